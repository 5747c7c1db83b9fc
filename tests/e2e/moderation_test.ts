/**
 * Moderation on the page (issue 10): moderators, and only they, see delete, kick and ban controls
 * and can set the topic; a moderator's delete takes the message off everyone's screen; the topic
 * shows under the room's name; people removed or banned are told so. Screenshots go to
 * `tests/e2e/screenshots/`.
 */
import assert from "node:assert/strict";
import type { Page } from "./_cdp.ts";
import {
  assertCleanPage,
  assertNoCspViolations,
  click,
  clickMessageControl,
  confirmDialog,
  CSP_RECORDER,
  enter,
  js,
  overflow,
  pageTest,
  roomTabs,
  screenshot,
  shownMessages,
  submit,
  typeAndSend,
  untilActiveRoom,
  untilMembers,
  untilShown,
  untilText,
} from "./_page.ts";

const SECRET = "moderators-only-secret";
const SPAM = "BUY CHEAP PILLS at http://spam.example/now";

/** Opens a page that records CSP violations, enters `nick` (as a moderator with `admin`). */
async function person(
  browser: import("./_cdp.ts").Browser,
  url: string,
  nick: string,
  admin = "",
): Promise<Page> {
  const page = await browser.newPage();
  await page.addInitScript(CSP_RECORDER);
  await enter(page, `${url}/#lobby`, nick, admin);
  await untilActiveRoom(page, "lobby");
  return page;
}

/** The moderators' controls a page shows: in the member list, and the topic button. */
function moderatorControls(page: Page): Promise<{ members: string[]; setTopic: boolean }> {
  return page.evaluate(`({
    members: [...document.querySelectorAll("#members [data-action=kick], #members [data-action=ban]")]
      .map((b) => b.getAttribute("aria-label")),
    setTopic: !document.getElementById("set-topic").hidden,
  })`);
}

pageTest(
  "a moderator deletes a spam message and it disappears from the other person's screen",
  async ({ url, browser, client }) => {
    const mod = await person(browser, url, "mia", SECRET);
    const bob = await person(browser, url, "bob");
    const spammer = await client.session("spammer");
    assert.equal((await client.join(spammer.token, "lobby")).status, 200);
    assert.equal((await client.send(spammer.token, "lobby", SPAM)).status, 201);
    await submit(bob, "hello everyone");
    for (const page of [mod, bob]) {
      await untilShown(page, SPAM);
      await untilShown(page, "hello everyone");
      await untilMembers(page, ["bob", "mia", "spammer"]);
    }

    // Only the moderator has the controls: delete on every message, kick and ban beside others.
    const modView = await shownMessages(mod);
    assert.deepEqual(modView.find((m) => m.text === SPAM)?.controls, ["delete"]);
    assert.deepEqual(modView.find((m) => m.text === "hello everyone")?.controls, ["delete"]);
    assert.deepEqual(await moderatorControls(mod), {
      members: ["Kick bob", "Ban bob", "Kick spammer", "Ban spammer"],
      setTopic: true,
    });
    // An ordinary person: nothing on others' messages, edit and delete on their own, no
    // moderation anywhere.
    const bobView = await shownMessages(bob);
    assert.deepEqual(bobView.find((m) => m.text === SPAM)?.controls, []);
    assert.deepEqual(bobView.find((m) => m.text === "hello everyone")?.controls, [
      "edit",
      "delete",
    ]);
    assert.deepEqual(await moderatorControls(bob), { members: [], setTopic: false });

    await mod.setViewport(1280, 800);
    await mod.evaluate(`document.querySelector('#messages li.message [data-action="delete"]')
      .focus()`);
    await screenshot(mod, "moderator-desktop-1280");

    await clickMessageControl(mod, SPAM, "delete");
    await mod.waitFor(`document.getElementById("dialog-title").textContent`, { what: "question" });
    assert.equal(
      await mod.evaluate(`document.getElementById("dialog-title").textContent`),
      "Delete the message of spammer?",
    );
    await screenshot(mod, "moderator-delete-dialog-1280");
    await confirmDialog(mod);

    // Gone from the other person's screen: no text left, "message deleted" in its place.
    const spamId = bobView.find((m) => m.text === SPAM)?.id;
    await bob.waitFor(
      `${
        js(spamId)
      } && document.querySelector('#messages li[data-id="${spamId}"]')?.classList.contains("deleted")`,
      { what: "the spam to show as deleted" },
    );
    for (const page of [bob, mod]) {
      const shown = (await shownMessages(page)).find((m) => m.id === spamId);
      assert.deepEqual([shown?.text, shown?.deleted, shown?.controls], [
        "message deleted",
        true,
        [],
      ]);
      assert.equal(await page.evaluate(`document.body.textContent.includes("CHEAP PILLS")`), false);
    }
    // And after a reload (from the history): still deleted.
    await bob.reload();
    await untilActiveRoom(bob, "lobby");
    await untilShown(bob, "hello everyone");
    const reloaded = (await shownMessages(bob)).find((m) => m.id === spamId);
    assert.deepEqual([reloaded?.text, reloaded?.deleted], ["message deleted", true]);

    await mod.setViewport(390, 844);
    await screenshot(mod, "moderator-phone-390");
    for (const page of [mod, bob]) {
      await assertNoCspViolations(page);
      assertCleanPage(page);
    }
  },
  { adminSecret: SECRET },
);

pageTest(
  "a moderator sets the topic, kicks and bans; the others see the topic under the room's name and who was removed",
  async ({ url, browser, client }) => {
    const mod = await person(browser, url, "mia", SECRET);
    const bob = await person(browser, url, "bob");

    // The topic, with the command: shown under the room's name, and as a line in the room.
    await typeAndSend(mod, "/topic Release on Friday");
    await untilText(bob, "topic", "Release on Friday");
    await bob.waitFor(
      `[...document.querySelectorAll("#messages li.system")]
        .some((li) => li.textContent.includes("mia set the topic: Release on Friday"))`,
      { what: "the line about the new topic" },
    );
    assert.equal(await mod.evaluate(`document.getElementById("send-input").value`), "");
    // And with the button.
    await click(mod, "#set-topic");
    await confirmDialog(mod, { field: "Ship it" });
    await untilText(bob, "topic", "Ship it");
    await untilText(mod, "topic", "Ship it");
    // Someone who joins later gets it with the room.
    const carol = await person(browser, url, "carol");
    await untilText(carol, "topic", "Ship it");
    await bob.setViewport(390, 844);
    await screenshot(bob, "topic-phone-390");

    // A kick from the member list, with a reason.
    await untilMembers(mod, ["bob", "carol", "mia"]);
    await mod.setViewport(390, 844);
    await click(mod, "#toggle-sidebar");
    await screenshot(mod, "moderator-members-phone-390");
    await click(mod, `#members li[data-nick="carol"] [data-action="kick"]`);
    await mod.waitFor(`document.getElementById("dialog").open`, { what: "the kick dialog" });
    await screenshot(mod, "moderator-kick-dialog-phone-390");
    await confirmDialog(mod, { field: "off topic" });
    await untilMembers(bob, ["bob", "mia"]);
    await bob.waitFor(
      `[...document.querySelectorAll("#messages li.system")]
        .some((li) => li.textContent.includes("carol was removed by mia: off topic"))`,
      { what: "the line about carol's removal" },
    );
    await untilText(carol, "notice", "You were removed from #lobby by mia: off topic.");
    assert.deepEqual(await roomTabs(carol), []);

    // A ban with the command: the session ends, and the nick cannot come back.
    const dave = await person(browser, url, "dave");
    await untilMembers(mod, ["bob", "dave", "mia"]);
    await typeAndSend(mod, "/ban dave 10 flooding");
    await mod.waitFor(
      `document.getElementById("notice").textContent.startsWith("dave is banned until ")`,
      { what: "the moderator's note of the ban" },
    );
    await dave.waitFor(`!document.getElementById("login").hidden`, { what: "dave's nick form" });
    await untilMembers(bob, ["bob", "mia"]);
    await dave.evaluate(`(() => {
      document.getElementById("nick-input").value = "dave";
      document.getElementById("nick-form").requestSubmit();
    })()`);
    const refusal = await dave.waitFor<string>(
      `document.getElementById("nick-error").textContent`,
      { what: "the refusal of dave's new session" },
    );
    assert.match(refusal, /^You are banned: flooding\. The ban ends .+\.$/);
    assert.equal(await dave.evaluate(`document.getElementById("chat").hidden`), true);
    const bans = await client.call("GET", "/api/bans", {
      token: await mod.evaluate<string>(`localStorage.getItem("parley.token")`),
    });
    assert.deepEqual(
      bans.body.bans.map((b: { nick: string; reason: string }) => [b.nick, b.reason]),
      [["dave", "flooding"]],
    );

    // A long nick and a long topic fit a 320 px screen beside the moderators' buttons.
    const long = await client.session("Bartholomew_Featherstonehaugh_II");
    await client.join(long.token, "lobby");
    await typeAndSend(mod, `/topic ${"A rather long topic that goes on and on. ".repeat(5)}`);
    await untilMembers(mod, ["Bartholomew_Featherstonehaugh_II", "bob", "mia"]);
    await mod.setViewport(320, 640);
    await mod.waitFor(`document.documentElement.clientWidth === 320`);
    for (const sidebar of ["open", "closed"]) {
      const seen = await overflow(mod);
      assert.equal(seen.scroll, seen.width, `nothing scrolls sideways, sidebar ${sidebar}`);
      assert.deepEqual(seen.wide, [], `nothing sticks out, sidebar ${sidebar}`);
      await screenshot(mod, `moderator-narrow-320-sidebar-${sidebar}`);
      await click(mod, "#toggle-sidebar");
    }

    // Mistakes keep the text: a kick of someone not here.
    await typeAndSend(mod, "/kick nobody");
    await untilText(mod, "notice", "nobody is not in #lobby.");
    assert.equal(await mod.evaluate(`document.getElementById("send-input").value`), "/kick nobody");
    for (const page of [mod, bob, carol]) {
      await assertNoCspViolations(page);
      assertCleanPage(page);
    }
  },
  { adminSecret: SECRET },
);
