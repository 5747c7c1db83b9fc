/**
 * Edits, deletes and typing on the page (issue 10): the author edits a message (Up arrow in an
 * empty composer edits the last one, Escape cancels) and deletes it; the other screens update the
 * message in place; "alice is typing…" shows for 5 s after a notice. Screenshots go to
 * `tests/e2e/screenshots/`.
 */
import assert from "node:assert/strict";
import type { Page } from "./_cdp.ts";
import {
  assertCleanPage,
  assertNoCspViolations,
  clickMessageControl,
  confirmDialog,
  CSP_RECORDER,
  enter,
  pageTest,
  screenshot,
  shownMessages,
  typeAndSend,
  untilActiveRoom,
  untilMembers,
  untilShown,
  untilText,
} from "./_page.ts";

/** alice and bob, each on a page in #lobby, seeing each other. */
async function aliceAndBob(browser: import("./_cdp.ts").Browser, url: string) {
  const pages: Page[] = [];
  for (const nick of ["alice", "bob"]) {
    const page = await browser.newPage();
    await page.addInitScript(CSP_RECORDER);
    await enter(page, `${url}/#lobby`, nick);
    await untilActiveRoom(page, "lobby");
    pages.push(page);
  }
  for (const page of pages) await untilMembers(page, ["alice", "bob"]);
  return { alice: pages[0]!, bob: pages[1]! };
}

const composer = (page: Page) =>
  page.evaluate<string>(`document.getElementById("send-input").value`);
const isEditing = (page: Page) =>
  page.evaluate<boolean>(`!document.getElementById("editing").hidden`);

pageTest("an edit shows on the other screen, and so does a delete", async ({ url, browser }) => {
  const { alice, bob } = await aliceAndBob(browser, url);
  await typeAndSend(alice, "see you at noon");
  await typeAndSend(alice, "helo bob");
  await untilShown(bob, "helo bob");
  await untilShown(alice, "helo bob");

  // Up arrow in the empty composer takes the last own message; Enter saves the new text.
  await alice.press("ArrowUp");
  assert.equal(await composer(alice), "helo bob");
  assert.equal(await isEditing(alice), true);
  await alice.setViewport(1280, 800);
  await screenshot(alice, "editing-desktop-1280");
  await alice.evaluate(`document.getElementById("send-input").select()`);
  await alice.insertText("hello bob");
  await alice.pressEnter();
  const edited = await untilShown(bob, "hello bob");
  assert.equal(edited.edited, true);
  assert.equal(await bob.evaluate(`document.body.textContent.includes("helo bob")`), false);
  assert.equal((await untilShown(alice, "hello bob")).edited, true);
  assert.equal(await isEditing(alice), false);
  assert.equal(await composer(alice), "");

  // Escape cancels, and gives the composer back what it held.
  await alice.press("ArrowUp");
  assert.equal(await composer(alice), "hello bob");
  await alice.insertText(" and more");
  await alice.press("Escape");
  assert.equal(await isEditing(alice), false);
  assert.equal(await composer(alice), "");
  // Up arrow with a draft in the composer is just a key in the text.
  await alice.insertText("a draft");
  await alice.press("ArrowUp");
  assert.equal(await isEditing(alice), false);
  assert.equal(await composer(alice), "a draft");
  // The Edit button edits an older message, and Escape brings the draft back.
  await clickMessageControl(alice, "see you at noon", "edit");
  assert.equal(await composer(alice), "see you at noon");
  await alice.press("Escape");
  assert.equal(await composer(alice), "a draft");

  // bob has no edit or delete on alice's messages; the (edited) mark is all he sees.
  const bobView = await shownMessages(bob);
  assert.deepEqual(
    bobView.map((m) => [m.text, m.edited, m.controls]),
    [["see you at noon", false, []], ["hello bob", true, []]],
  );

  // alice deletes her message: bob sees "message deleted" in its place, without the text.
  await clickMessageControl(alice, "see you at noon", "delete");
  await confirmDialog(alice);
  await bob.waitFor(`document.querySelector("#messages li.deleted")`, { what: "the delete" });
  assert.deepEqual(
    (await shownMessages(bob)).map((m) => [m.text, m.deleted]),
    [["message deleted", true], ["hello bob", false]],
  );
  await alice.setViewport(390, 844);
  await alice.press("ArrowUp");
  await screenshot(alice, "editing-phone-390");
  for (const page of [alice, bob]) {
    await assertNoCspViolations(page);
    assertCleanPage(page);
  }
});

pageTest("the typing notice appears and goes", async ({ url, browser, client }) => {
  const { alice, bob } = await aliceAndBob(browser, url);
  // A notice reaches polls waiting at that moment only (it is never stored): both pages poll.
  await client.untilMetric("parley_waiting_polls", 2);
  await alice.evaluate(`document.getElementById("send-input").focus()`);
  await alice.insertText("hel");
  await untilText(bob, "typing", "alice is typing…");
  const shownAt = Date.now();
  await bob.setViewport(390, 844);
  await screenshot(bob, "typing-phone-390");
  // It goes by itself, after 5 s (the page's timer cannot fire early; the wait bounds it late).
  await bob.waitFor(`document.getElementById("typing").textContent === ""`, {
    timeoutMs: 8000,
    what: "the typing notice to go",
  });
  const shownFor = Date.now() - shownAt;
  assert.ok(shownFor >= 4000, `shown for ${shownFor} ms`);
  assert.equal(await alice.evaluate(`document.getElementById("typing").textContent`), "");

  // Typing on (more than 3 s later) tells again; the message itself ends the notice at once.
  await client.untilMetric("parley_waiting_polls", 2);
  await alice.insertText("lo");
  await untilText(bob, "typing", "alice is typing…");
  await alice.pressEnter();
  await untilShown(bob, "hello");
  await bob.waitFor(`document.getElementById("typing").textContent === ""`, {
    timeoutMs: 1000,
    what: "the notice to go with the message",
  });
  for (const page of [alice, bob]) {
    await assertNoCspViolations(page);
    assertCleanPage(page);
  }
});
