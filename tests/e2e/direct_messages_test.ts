/**
 * Direct messages on the page (issue 10): a member's name opens a private conversation, listed
 * apart from the rooms by the other person's nick (never by its `@` room name), with unread
 * counts; nobody else sees any of it; it goes from the list, with a notice, when it ends.
 */
import assert from "node:assert/strict";
import type { Page } from "./_cdp.ts";
import {
  assertCleanPage,
  assertNoCspViolations,
  click,
  CSP_RECORDER,
  enter,
  pageTest,
  roomTabs,
  screenshot,
  shownMessages,
  typeAndSend,
  untilMembers,
  untilShown,
  untilText,
} from "./_page.ts";

/** The direct conversations a page lists: label and unread badge ("" without one). */
function dmList(page: Page): Promise<[string, string][]> {
  return page.evaluate(`[...document.querySelectorAll("#dm-list button")].map((b) => [
    b.querySelector(".room-name").textContent,
    b.querySelector(".badge")?.textContent ?? "",
  ])`);
}

/** Whether the page shows a direct room's name (`@` + 16 hex) anywhere in its text. */
const SHOWS_ROOM_NAME = `/@[0-9a-f]{16}/.test(document.body.innerText + document.title)`;

pageTest(
  "two people open a DM from the member list and talk in it while a third sees nothing of it",
  async ({ url, browser, client }) => {
    const pages: Record<string, Page> = {};
    for (const nick of ["alice", "bob", "carol"]) {
      const page = pages[nick] = await browser.newPage();
      await page.addInitScript(CSP_RECORDER);
      await enter(page, `${url}/#lobby`, nick);
    }
    const { alice, bob, carol } = pages as Record<"alice" | "bob" | "carol", Page>;
    for (const page of [alice, bob, carol]) await untilMembers(page, ["alice", "bob", "carol"]);
    assert.deepEqual(await dmList(alice), []);

    // alice chooses bob in the member list: the conversation opens, labelled with his nick.
    await click(alice, `#members li[data-nick="bob"] button[data-action="dm"]`);
    await untilText(alice, "room-title", "@bob");
    assert.deepEqual(await dmList(alice), [["bob", ""]]);
    const tabs = await roomTabs(alice);
    assert.equal(tabs.length, 2);
    assert.equal(tabs[0], "lobby");
    assert.match(tabs[1] ?? "", /^@[0-9a-f]{16}$/);
    assert.equal(
      await alice.evaluate(`document.querySelector("#room-tabs button.dm .room-name").textContent`),
      "@bob",
    );
    await untilMembers(alice, ["alice", "bob"]);
    await typeAndSend(alice, "just between us");
    await untilShown(alice, "just between us");

    // bob sees it listed apart from the rooms, with an unread count, and answers there.
    await bob.waitFor(
      `document.querySelector("#dm-list button .badge")?.textContent === "1"`,
      { what: "bob's unread direct message" },
    );
    assert.deepEqual(await dmList(bob), [["alice", "1"]]);
    assert.equal(
      await bob.evaluate(`document.querySelectorAll("#room-list li").length`),
      1,
      "only #lobby among the rooms",
    );
    await click(bob, "#dm-list button");
    await untilText(bob, "room-title", "@alice");
    await untilShown(bob, "just between us");
    assert.deepEqual(await dmList(bob), [["alice", ""]]);
    await typeAndSend(bob, "got it");
    await untilShown(alice, "got it");
    assert.deepEqual(
      (await shownMessages(alice)).map((m) => [m.nick, m.text]),
      [["alice", "just between us"], ["bob", "got it"]],
    );

    // carol: nothing of it, not in her lists, not a message, not in the room listing.
    await alice.evaluate(`document.querySelector('#room-tabs button[data-room="lobby"]').click()`);
    await typeAndSend(alice, "back in the lobby");
    await untilShown(carol, "back in the lobby");
    assert.deepEqual(await dmList(carol), []);
    assert.deepEqual(await roomTabs(carol), ["lobby"]);
    assert.equal(await carol.evaluate(`document.querySelectorAll("#room-list li").length`), 1);
    for (const text of ["just between us", "got it"]) {
      assert.equal(await carol.evaluate(`document.body.textContent.includes("${text}")`), false);
    }
    assert.equal(await carol.evaluate(`localStorage.getItem("parley.dms")`), null);
    const listing = await client.call("GET", "/api/rooms");
    assert.deepEqual(listing.body.rooms, [{ name: "lobby", members: 3 }]);
    // Nobody sees the conversation's room name, only nicks.
    for (const page of [alice, bob, carol]) {
      assert.equal(await page.evaluate(SHOWS_ROOM_NAME), false);
    }

    await alice.evaluate(`document.querySelector("#room-tabs button.dm").click()`);
    await untilText(alice, "room-title", "@bob");
    await alice.setViewport(1280, 800);
    await screenshot(alice, "dm-desktop-1280");
    await bob.setViewport(390, 844);
    await bob.evaluate(`document.getElementById("toggle-sidebar").click()`);
    await screenshot(bob, "dm-phone-390");
    await bob.evaluate(`document.getElementById("toggle-sidebar").click()`);

    // bob's session ends: the conversation goes from alice's page with a short notice.
    await click(bob, "#logout");
    await alice.waitFor(`document.querySelectorAll("#dm-list li").length === 0`, {
      what: "the conversation to leave alice's list",
    });
    await untilText(alice, "notice", "The conversation with bob has ended (bob left).");
    assert.deepEqual(await roomTabs(alice), ["lobby"]);
    assert.equal(
      await alice.evaluate(`JSON.parse(localStorage.getItem("parley.dms")).dms.length`),
      0,
    );
    for (const page of [alice, carol]) {
      await assertNoCspViolations(page);
      assertCleanPage(page);
    }
  },
);

pageTest(
  "a conversation that ended while no tab was open is gone after a reload, with a notice",
  async ({ url, browser, client }) => {
    const alice = await browser.newPage();
    await enter(alice, `${url}/#lobby`, "alice");
    const bob = await client.session("bob");
    await client.join(bob.token, "lobby");
    await untilMembers(alice, ["alice", "bob"]);
    // This time from bob's name on his message.
    await client.send(bob.token, "lobby", "ping me");
    const { id } = await untilShown(alice, "ping me");
    await click(alice, `#messages li[data-id="${id}"] button.nick[data-action="dm"]`);
    await untilText(alice, "room-title", "@bob");
    const room = await alice.evaluate<string>(`decodeURIComponent(location.hash.slice(1))`);
    await alice.evaluate(`document.querySelector('#room-tabs button[data-room="lobby"]').click()`);

    // The page is away (no poll) while bob's session ends: it never hears his leave.
    await alice.navigate("about:blank");
    assert.equal((await client.call("DELETE", "/api/session", { token: bob.token })).status, 204);
    await alice.navigate(`${url}/#lobby`);
    await untilText(alice, "notice", "The conversation with bob has ended.");
    assert.deepEqual(await dmList(alice), []);
    // Its address names no conversation any more.
    await alice.navigate("about:blank");
    await alice.navigate(`${url}/#${encodeURIComponent(room)}`);
    await untilText(
      alice,
      "notice",
      "The direct conversation in the address has ended, or is not yours.",
    );
    assertCleanPage(alice);
  },
);
