/**
 * What a person typed is not lost (issue 12): unsent messages are kept in the browser and sent,
 * in order, when the server can be reached again; a burst waits out `Retry-After` in one queue per
 * room; a session that expired comes back with its rooms; a message the server refuses goes back
 * into the composer; unread counts survive a reload.
 */
import assert from "node:assert/strict";
import type { ApiClient } from "../_server.ts";
import type { Page } from "./_cdp.ts";
import {
  assertCleanPage,
  countShown,
  enter,
  joinRoom,
  js,
  logIn,
  pageTest,
  roomTabs,
  roomTexts,
  screenshot,
  shownMessages,
  submit,
  untilActiveRoom,
  untilShown,
} from "./_page.ts";

/** Waits until the page shows `count` pending (unsent) messages. */
async function untilPending(page: Page, count: number): Promise<void> {
  await page.waitFor(`document.querySelectorAll("#messages li.pending").length === ${count}`, {
    what: `${count} pending messages`,
  });
}

/** Collects the messages of `room` that an observer session receives by polling. */
async function observe(client: ApiClient, room: string) {
  const { token, cursor: start } = await client.session("observer");
  assert.equal((await client.join(token, room)).status, 200);
  const texts: string[] = [];
  let cursor = start;
  return {
    texts,
    /** Polls until `count` messages came (or the deadline). */
    async until(count: number, timeoutMs = 15_000): Promise<string[]> {
      const deadline = Date.now() + timeoutMs;
      while (texts.length < count && Date.now() < deadline) {
        const res = await client.poll(token, cursor, 1);
        for (const ev of res.body.events) if (ev.type === "message") texts.push(ev.text);
        cursor = res.body.cursor;
      }
      return texts;
    },
  };
}

pageTest(
  "unsent messages survive a reload and are sent in order once the server can be reached",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    const observer = await observe(client, "lobby");

    await page.failRequests("*/messages");
    await submit(page, "first while down");
    await submit(page, "second while down");
    await untilPending(page, 2);
    await page.waitFor(
      `document.querySelector("#messages li.pending .state").textContent.includes("no connection")`,
      { what: "the note that there is no connection" },
    );
    assert.equal(
      await page.evaluate(`document.querySelectorAll("#messages li.pending button")
      .length`),
      2,
      "only Discard, no Retry",
    );

    await page.reload();
    await untilActiveRoom(page, "lobby");
    await untilPending(page, 2);
    assert.deepEqual(
      (await shownMessages(page)).filter((m) => m.pending).map((m) => m.text),
      ["first while down", "second while down"],
    );
    await page.setViewport(390, 700);
    await page.waitFor(`document.querySelector("#messages li.pending .state")
      ?.textContent.includes("no connection")`);
    await screenshot(page, "pending-phone-390");

    await page.stopFailingRequests();
    await untilShown(page, "second while down", 15_000);
    assert.deepEqual(await observer.until(2), ["first while down", "second while down"]);
    await untilPending(page, 0);
    assert.equal(await countShown(page, "first while down"), 1);
    assert.deepEqual(await page.evaluate(`localStorage.getItem("parley.outbox")`), null);
    assertCleanPage(page);
  },
);

pageTest(
  "a burst of messages reaches everyone in order, waiting out Retry-After",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    const observer = await observe(client, "lobby");
    const burst = Array.from({ length: 25 }, (_, i) => `burst ${i + 1}`);
    await page.evaluate(`(() => {
      const input = document.getElementById("send-input");
      const form = document.getElementById("send-form");
      for (const text of ${js(burst)}) {
        input.value = text;
        form.requestSubmit();
      }
    })()`);
    assert.deepEqual(await observer.until(25, 20_000), burst);
    await untilShown(page, "burst 25", 5000);
    await untilPending(page, 0);
    const shown = (await shownMessages(page)).map((m) => m.text);
    assert.deepEqual(shown, burst);
    assert.equal(await page.evaluate(`document.querySelectorAll("#messages li.failed").length`), 0);
    assertCleanPage(page);
  },
  { flags: ["--send-rate", "5/s"] },
);

pageTest(
  "after a session ends, logging in again brings back every room and sends what was typed",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    for (const room of ["dev", "ops", "random"]) await joinRoom(page, room);
    await untilActiveRoom(page, "random");
    const token = await page.evaluate<string>(`localStorage.getItem("parley.token")`);

    // Offline, a message is typed; meanwhile the server ends the session (as presence expiry does).
    await page.failRequests("*/api/*");
    await submit(page, "typed while away");
    await untilPending(page, 1);
    assert.equal((await client.call("DELETE", "/api/session", { token })).status, 204);
    await page.stopFailingRequests();

    await page.waitFor(`!document.getElementById("login").hidden`, {
      timeoutMs: 20_000,
      what: "the nick form after the session ended",
    });
    assert.match(
      await page.evaluate<string>(`document.getElementById("login-note").textContent`),
      /session has ended/,
    );
    assert.equal(await page.evaluate(`document.getElementById("nick-input").value`), "alice");
    await logIn(page, "alice");
    await untilActiveRoom(page, "random");
    assert.deepEqual(await roomTabs(page), ["lobby", "dev", "ops", "random"]);
    await untilShown(page, "typed while away", 10_000);

    const listed = await client.call("GET", "/api/rooms");
    assert.deepEqual(
      listed.body.rooms,
      ["dev", "lobby", "ops", "random"].map((name) => ({ name, members: 1 })),
    );
    const { token: observer } = await client.session("observer");
    await client.join(observer, "random");
    assert.deepEqual(await roomTexts(client, observer, "random"), ["typed while away"]);
    assertCleanPage(page);
  },
);

pageTest(
  "a message the server refuses is explained and put back into the composer",
  async ({ url, browser }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    const long = "This message is longer than the server allows.";
    await submit(page, long);
    await page.waitFor(`document.getElementById("notice").textContent.includes("longer than")`, {
      what: "the server's reason in the notice",
    });
    assert.equal(await page.evaluate(`document.getElementById("send-input").value`), long);
    await untilPending(page, 0);
    assert.equal(await page.evaluate(`document.querySelectorAll("#messages button").length`), 0);
    // A control character: refused too, explained, and given back.
    const bell = "ring \u0007";
    await submit(page, bell);
    await page.waitFor(`document.getElementById("notice").textContent.includes("control")`, {
      what: "the reason for the control character",
    });
    assert.equal(
      await page.evaluate(`document.getElementById("send-input").value`),
      bell,
    );
    await untilPending(page, 0);
    await submit(page, "short one");
    await untilShown(page, "short one");
    assert.equal(await page.evaluate(`document.getElementById("notice").textContent`), "");
    assertCleanPage(page);
  },
  { flags: ["--max-message", "20"] },
);

pageTest(
  "the composer counts characters near the limit and keeps a message over it",
  async ({ url, browser }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    await page.recordRequests();
    const counter = `document.getElementById("send-count")`;
    await page.evaluate(`document.getElementById("send-input").focus()`);
    await page.insertText("short");
    assert.equal(await page.evaluate(`${counter}.hidden`), true);
    // Code points, as the server counts them: each of these emoji is two UTF-16 units.
    await page.insertText("😀".repeat(1995));
    await page.waitFor(`!${counter}.hidden`, { what: "the counter" });
    assert.match(await page.evaluate<string>(`${counter}.textContent`), /^2000 \/ 2000\b/);
    await page.insertText("!");
    assert.match(await page.evaluate<string>(`${counter}.textContent`), /2001 \/ 2000.*1 too many/);
    await page.pressEnter();
    await page.waitFor(`document.getElementById("notice").textContent.includes("2000")`, {
      what: "the notice about the limit",
    });
    assert.equal(
      await page.evaluate<number>(`[...document.getElementById("send-input").value].length`),
      2001,
    );
    assert.deepEqual(page.requests.filter((r) => r.includes("/messages")), []);
    assertCleanPage(page);
  },
);

pageTest("unread counts survive a reload and show in the tab title", async (context) => {
  const { url, browser, client } = context;
  const page = await browser.newPage();
  await enter(page, `${url}/#dev`, "alice");
  await untilActiveRoom(page, "dev");
  await joinRoom(page, "lobby");
  const bob = await client.session("bob");
  await client.join(bob.token, "dev");
  const badge = `document.querySelector('#room-tabs button[data-room="dev"] .badge')`;
  for (let i = 1; i <= 3; i++) await client.send(bob.token, "dev", `unread ${i}`);
  await page.waitFor(`${badge}?.textContent === "3"`, { what: "3 unread in #dev" });
  await page.waitFor(`document.title.startsWith("(3) ")`, { what: "(3) in the title" });

  await page.reload();
  await untilActiveRoom(page, "lobby");
  for (let i = 4; i <= 7; i++) await client.send(bob.token, "dev", `unread ${i}`);
  await page.waitFor(`${badge}?.textContent === "7"`, { what: "7 unread in #dev" });
  assert.match(await page.evaluate<string>(`document.title`), /^\(7\) #lobby · Parley$/);

  await page.evaluate(`document.querySelector('#room-tabs button[data-room="dev"]').click()`);
  await untilActiveRoom(page, "dev");
  await untilShown(page, "unread 7");
  assert.equal(await page.evaluate(`${badge}`), null);
  assert.equal(await page.evaluate(`document.title`), "#dev · Parley");
  assertCleanPage(page);
});
