/**
 * Tabs of one browser (DESIGN.md, "The page"): one long poll however many tabs are open, shared
 * by the leading tab; another takes over when it closes; logging out, logging in, joining and
 * leaving in one tab shows in all.
 */
import assert from "node:assert/strict";
import { delay } from "../_server.ts";
import {
  assertCleanPage,
  clickMessageControl,
  confirmDialog,
  countShown,
  enter,
  joinRoom,
  js,
  logIn,
  pageTest,
  roomTabs,
  submit,
  untilActiveRoom,
  untilShown,
} from "./_page.ts";

const TAB_SECRET = "moderators-only-secret";

/** How many poll locks of the session are held and requested, as the page sees them. */
const POLL_LOCKS = `navigator.locks.query().then(({ held = [], pending = [] }) => ({
  held: held.filter((l) => l.name.startsWith("parley.poll:")).length,
  pending: pending.filter((l) => l.name.startsWith("parley.poll:")).length,
}))`;

pageTest(
  "two tabs of one browser hold one poll between them, and the other takes over when the leader closes",
  async ({ url, browser, client }) => {
    const first = await browser.newPage();
    await enter(first, `${url}/#lobby`, "alice");
    await untilActiveRoom(first, "lobby");
    await client.untilMetric("parley_waiting_polls", 1);
    const second = await browser.newPage({ tabOf: first });
    await second.navigate(`${url}/#lobby`);
    // The second tab goes on with the session of the first: no nick form.
    await second.waitFor(`!document.getElementById("chat").hidden`, { what: "the chat" });
    await untilActiveRoom(second, "lobby");
    assert.equal(
      await second.evaluate(`document.getElementById("me").textContent`),
      "Signed in as alice",
    );

    // Sampled for a while: the two tabs never hold more than one poll between them.
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      samples.push(await client.metric("parley_waiting_polls"));
      await delay(100);
    }
    assert.ok(samples.every((n) => n <= 1), `waiting polls: ${samples}`);
    assert.ok(samples.includes(1), `waiting polls: ${samples}`);

    const bob = await client.session("bob");
    assert.equal((await client.join(bob.token, "lobby")).status, 200);
    assert.equal((await client.send(bob.token, "lobby", "one for both")).status, 201);
    for (const page of [first, second]) {
      const shown = await untilShown(page, "one for both");
      assert.equal(shown.own, false);
    }

    // One tab holds the session's poll lock, the other waits for it.
    assert.deepEqual(await second.evaluate(POLL_LOCKS), { held: 1, pending: 1 });

    // The leading tab goes away; the other one takes the lock and polls on from the same cursor.
    const closedAt = Date.now();
    await first.close();
    await second.waitFor(`${POLL_LOCKS}.then((n) => n.held === 1 && n.pending === 0)`, {
      timeoutMs: 2000,
      what: "the remaining tab to take the poll lock",
    });
    const tookOver = Date.now() - closedAt;
    console.log(`  the remaining tab took the lead ${tookOver} ms after the leading tab closed`);
    assert.equal((await client.send(bob.token, "lobby", "after the leader left")).status, 201);
    await untilShown(second, "after the leader left", 4000);
    await client.untilMetric("parley_waiting_polls", 1);
    assert.equal(await countShown(second, "one for both"), 1);
    assert.equal(await countShown(second, "after the leader left"), 1);

    // It sends too, and stays the only poll (at a given moment its poll may be between an answer
    // and the next request, so this waits for one; two polls held would keep it from being one).
    await submit(second, "still here");
    await untilShown(second, "still here");
    await client.untilMetric("parley_waiting_polls", 1);
    assertCleanPage(second);
  },
);

pageTest(
  "when the leading tab crashes, another takes over from the same cursor",
  async ({ url, browser, client }) => {
    const first = await browser.newPage();
    await enter(first, `${url}/#lobby`, "alice");
    await untilActiveRoom(first, "lobby");
    const second = await browser.newPage({ tabOf: first });
    await second.navigate(`${url}/#lobby`);
    await untilActiveRoom(second, "lobby");
    assert.deepEqual(await second.evaluate(POLL_LOCKS), { held: 1, pending: 1 });
    const bob = await client.session("bob");
    await client.join(bob.token, "lobby");
    await client.send(bob.token, "lobby", "before the crash");
    await untilShown(second, "before the crash");

    const crashedAt = Date.now();
    first.crash();
    // Sent while no tab may be polling: it must come from the shared cursor, not be skipped.
    await client.send(bob.token, "lobby", "during the crash");
    await second.waitFor(`${POLL_LOCKS}.then((n) => n.held === 1 && n.pending === 0)`, {
      timeoutMs: 2000,
      what: "the remaining tab to take the poll lock",
    });
    console.log(`  the remaining tab took the lead ${Date.now() - crashedAt} ms after the crash`);
    await client.send(bob.token, "lobby", "after the crash");
    await untilShown(second, "after the crash", 4000);
    for (const text of ["before the crash", "during the crash", "after the crash"]) {
      assert.equal(await countShown(second, text), 1, text);
    }
    await client.untilMetric("parley_waiting_polls", 1);
    assertCleanPage(second);
    await first.close();
  },
);

pageTest(
  "logging out in one tab logs out every tab, and logging in again brings them all back",
  async ({ url, browser, client }) => {
    const first = await browser.newPage();
    await enter(first, `${url}/#lobby`, "alice");
    await untilActiveRoom(first, "lobby");
    const second = await browser.newPage({ tabOf: first });
    await second.navigate(`${url}/#lobby`);
    await untilActiveRoom(second, "lobby");

    await first.evaluate(`document.getElementById("logout").click()`);
    await second.waitFor(`!document.getElementById("login").hidden`, {
      what: "the nick form in the other tab",
    });
    assert.equal(await second.evaluate(`document.getElementById("chat").hidden`), true);

    // Logging in again in the first tab, with the same nick: the second follows that session.
    await logIn(first, "alice");
    await untilActiveRoom(first, "lobby");
    await second.waitFor(`!document.getElementById("chat").hidden`, {
      what: "the other tab to follow the new session",
    });
    const token = await first.evaluate<string>(`localStorage.getItem("parley.token")`);
    assert.equal(await second.evaluate(`localStorage.getItem("parley.token")`), token);
    assert.equal(await second.evaluate(`document.getElementById("nick-error").textContent`), "");
    await untilActiveRoom(second, "lobby");
    await submit(second, "from the second tab");
    await untilShown(first, "from the second tab");
    const rooms = await client.call("GET", "/api/rooms");
    assert.deepEqual(rooms.body.rooms, [{ name: "lobby", members: 1 }]);
    assertCleanPage(first);
    assertCleanPage(second);
  },
);

pageTest(
  "joining or leaving a room in one tab shows in every tab",
  async ({ url, browser, client }) => {
    const first = await browser.newPage();
    await enter(first, `${url}/#lobby`, "alice");
    await untilActiveRoom(first, "lobby");
    const second = await browser.newPage({ tabOf: first });
    await second.navigate(`${url}/#lobby`);
    await untilActiveRoom(second, "lobby");

    await joinRoom(first, "dev");
    await second.waitFor(
      `${js(["lobby", "dev"])}.join() === [...document.querySelectorAll(
      "#room-tabs button[data-room]")].map((b) => b.dataset.room).join()`,
      {
        what: "#dev among the other tab's rooms",
      },
    );

    // Left in the second tab, while the first one shows it.
    await second.evaluate(
      `document.querySelector('#room-tabs button[data-room="dev"]').click()`,
    );
    await untilActiveRoom(second, "dev");
    await second.evaluate(`document.getElementById("leave").click()`);
    await first.waitFor(
      `!document.querySelector('#room-tabs button[data-room="dev"]')`,
      { what: "#dev to go from the first tab" },
    );
    assert.deepEqual(await roomTabs(first), ["lobby"]);
    assert.deepEqual(await roomTabs(second), ["lobby"]);
    await untilActiveRoom(first, "lobby");
    // Sending works in the room both still show.
    await submit(first, "in the lobby");
    await untilShown(second, "in the lobby");
    const rooms = await client.call("GET", "/api/rooms");
    assert.deepEqual(rooms.body.rooms, [{ name: "dev", members: 0 }, {
      name: "lobby",
      members: 1,
    }]);
    assertCleanPage(first);
    assertCleanPage(second);
  },
);

pageTest(
  "a message left unsent in a tab that closed is sent by a tab still open",
  async ({ url, browser, client }) => {
    const first = await browser.newPage();
    await enter(first, `${url}/#lobby`, "alice");
    await untilActiveRoom(first, "lobby");
    const second = await browser.newPage({ tabOf: first });
    await second.navigate(`${url}/#lobby`);
    await untilActiveRoom(second, "lobby");

    await second.failRequests("*/messages");
    await submit(second, "from a tab that closed");
    await second.waitFor(
      `document.querySelector("#messages li.pending .state")
      ?.textContent.includes("no connection")`,
      { what: "the failed send" },
    );
    // Every tab shows what waits to be sent.
    await first.waitFor(`document.querySelectorAll("#messages li.pending").length === 1`, {
      what: "the pending message in the other tab",
    });
    await second.close();
    await untilShown(first, "from a tab that closed", 10_000);
    assert.equal(await countShown(first, "from a tab that closed"), 1);
    const { token } = await client.session("observer");
    await client.join(token, "lobby");
    const history = await client.call("GET", "/api/rooms/lobby/history", { token });
    assert.deepEqual(
      history.body.events.filter((e: { type: string }) => e.type === "message").map((
        e: { text: string },
      ) => e.text),
      ["from a tab that closed"],
    );
    assertCleanPage(first);
  },
);

pageTest(
  "an edit, a delete, a topic and a direct conversation seen in one tab show in the others",
  async ({ url, browser, client }) => {
    const first = await browser.newPage();
    await enter(first, `${url}/#lobby`, "mia", TAB_SECRET);
    await untilActiveRoom(first, "lobby");
    const second = await browser.newPage({ tabOf: first });
    await second.navigate(`${url}/#lobby`);
    await untilActiveRoom(second, "lobby");
    const bob = await client.session("bob");
    await client.join(bob.token, "lobby");
    const sent = await client.send(bob.token, "lobby", "a typo mesage");
    for (const page of [first, second]) await untilShown(page, "a typo mesage");

    // Edits and deletes of others come through the one shared poll.
    const edit = await client.call("PATCH", `/api/rooms/lobby/messages/${sent.body.event.id}`, {
      token: bob.token,
      body: { text: "a typo message" },
    });
    assert.equal(edit.status, 200);
    for (const page of [first, second]) {
      assert.ok((await untilShown(page, "a typo message")).edited);
    }
    await clickMessageControl(first, "a typo message", "delete");
    await confirmDialog(first);
    await second.waitFor(
      `document.querySelector("#messages li.deleted")?.textContent
      .includes("message deleted")`,
      { what: "the delete in the other tab" },
    );

    // The own edit, with Up arrow in one tab; the topic, with the command in the other.
    await submit(first, "mine");
    await untilShown(second, "mine");
    await first.evaluate(`document.getElementById("send-input").focus()`);
    await first.press("ArrowUp");
    await first.insertText(", edited");
    await first.pressEnter();
    assert.ok((await untilShown(second, "mine, edited")).edited);
    await second.evaluate(`document.getElementById("send-input").focus()`);
    await second.insertText("/topic Tabs agree");
    await second.pressEnter();
    await first.waitFor(`document.getElementById("topic").textContent === "Tabs agree"`, {
      what: "the topic in the other tab",
    });

    // A conversation bob opens is listed in both tabs; closing it in one closes it in both.
    const dm = await client.call("POST", "/api/dm", { token: bob.token, body: { nick: "mia" } });
    assert.equal(dm.status, 200);
    assert.equal((await client.send(bob.token, dm.body.room, "hi mia")).status, 201);
    for (const page of [first, second]) {
      await page.waitFor(
        `document.querySelector("#dm-list button")?.textContent === "bob1 unread"`,
        { what: "the conversation with bob, unread" },
      );
    }
    await first.evaluate(`document.querySelector("#dm-list button").click()`);
    await untilShown(first, "hi mia");
    await second.waitFor(`document.querySelector("#dm-list button") !== null`);
    await second.evaluate(`document.querySelector("#dm-list button").click()`);
    await untilShown(second, "hi mia");
    await second.evaluate(`document.getElementById("leave").click()`);
    await first.waitFor(`document.querySelectorAll("#dm-list li").length === 0`, {
      what: "the conversation to leave the other tab's list",
    });
    assert.deepEqual(await roomTabs(first), ["lobby"]);
    assertCleanPage(first);
    assertCleanPage(second);
  },
  { adminSecret: TAB_SECRET },
);
