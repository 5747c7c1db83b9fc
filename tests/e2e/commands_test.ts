/**
 * Slash commands in the message field (issue 10): `/help` lists them; `/join`, `/leave`, `/msg`
 * and `/me` work for everyone; `/topic`, `/kick` and `/ban` only for moderators; an unknown or
 * refused command explains itself and keeps the text. Screenshots go to `tests/e2e/screenshots/`.
 */
import assert from "node:assert/strict";
import type { Page } from "./_cdp.ts";
import {
  assertCleanPage,
  assertNoCspViolations,
  CSP_RECORDER,
  enter,
  pageTest,
  roomTabs,
  roomTexts,
  screenshot,
  typeAndSend,
  untilActiveRoom,
  untilMembers,
  untilShown,
  untilText,
} from "./_page.ts";

const composer = (page: Page) =>
  page.evaluate<string>(`document.getElementById("send-input").value`);

/** Types `text` into an emptied composer and presses Enter. */
async function command(page: Page, text: string): Promise<void> {
  await page.evaluate(`document.getElementById("send-input").value = ""`);
  await typeAndSend(page, text);
}

pageTest(
  "slash commands join, leave, act, message someone privately and list themselves",
  async ({ url, browser, client }) => {
    const alice = await browser.newPage();
    await alice.addInitScript(CSP_RECORDER);
    await enter(alice, `${url}/#lobby`, "alice");
    const bob = await browser.newPage();
    await enter(bob, `${url}/#lobby`, "bob");
    for (const page of [alice, bob]) await untilMembers(page, ["alice", "bob"]);

    await command(alice, "/help");
    const listed = await alice.evaluate<string[]>(
      `[...document.querySelectorAll("#help li code")].map((c) => c.textContent)`,
    );
    assert.deepEqual(listed, [
      "/join ROOM",
      "/leave",
      "/msg NICK [TEXT]",
      "/me TEXT",
      "/topic [TEXT]",
      "/kick NICK [REASON]",
      "/ban NICK MINUTES [REASON]",
      "/help",
      "//",
    ]);
    assert.equal(await composer(alice), "");
    await alice.setViewport(390, 844);
    await screenshot(alice, "help-phone-390");
    await alice.press("Escape");
    assert.equal(await alice.evaluate(`document.getElementById("help").hidden`), true);

    // An unknown command explains itself and keeps the text.
    await command(alice, "/frob now");
    await untilText(alice, "notice", "Unknown command /frob. Type /help for the list.");
    assert.equal(await composer(alice), "/frob now");

    await command(alice, "/join dev");
    await untilActiveRoom(alice, "dev");
    assert.deepEqual(await roomTabs(alice), ["lobby", "dev"]);
    assert.equal(await composer(alice), "");
    await command(alice, "/leave");
    await untilActiveRoom(alice, "lobby");
    assert.deepEqual(await roomTabs(alice), ["lobby"]);

    // /me: sent as typed, shown as an action with the nick.
    await command(alice, "/me waves");
    const action = await untilShown(bob, "waves");
    assert.deepEqual([action.nick, action.action], ["alice", true]);
    assert.equal(
      await bob.evaluate(`getComputedStyle(document.querySelector("#messages li.action .nick"),
        "::before").content`),
      `"* "`,
    );
    const token = await alice.evaluate<string>(`localStorage.getItem("parley.token")`);
    assert.deepEqual(await roomTexts(client, token, "lobby"), ["/me waves"]);
    // A double slash sends text starting with one.
    await command(alice, "//shrug");
    await untilShown(bob, "/shrug");

    // /msg opens the conversation with bob, shows it and sends there.
    await command(alice, "/msg bob psst, a secret");
    await untilText(alice, "room-title", "@bob");
    await untilShown(alice, "psst, a secret");
    await bob.waitFor(`document.querySelector("#dm-list button .badge")?.textContent === "1"`, {
      what: "bob's unread direct message",
    });
    assert.equal(
      await bob.evaluate(`document.querySelector("#dm-list .room-name").textContent`),
      "alice",
    );
    await command(alice, "/msg nobody hello");
    await untilText(alice, "notice", "Nobody has that nick.");
    assert.equal(await composer(alice), "/msg nobody hello");

    // The moderators' commands are refused to others, with the text kept; /topic alone tells.
    await alice.evaluate(`document.querySelector('#room-tabs button[data-room="lobby"]').click()`);
    await untilActiveRoom(alice, "lobby");
    for (
      const [typed, name] of [["/kick bob", "kick"], ["/ban bob 5", "ban"], ["/topic x", "topic"]]
    ) {
      await command(alice, typed!);
      await untilText(alice, "notice", `Only moderators can use /${name}.`);
      assert.equal(await composer(alice), typed);
    }
    await command(alice, "/topic");
    await untilText(alice, "notice", "#lobby has no topic.");
    assert.deepEqual(await roomTexts(client, token, "lobby"), ["/me waves", "/shrug"]);
    await assertNoCspViolations(alice);
    assertCleanPage(alice);
    assertCleanPage(bob);
  },
);
