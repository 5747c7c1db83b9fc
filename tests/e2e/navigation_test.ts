/**
 * Finding one's way (issues 9 and 12): a reload loads one room list and only the room shown; skip
 * links and a room list that is one tab stop; member counts that follow joins and leaves at once;
 * room names from the address checked before they reach a path; notices that belong to a room;
 * member lists that load page by page.
 */
import assert from "node:assert/strict";
import type { Page } from "./_cdp.ts";
import {
  assertCleanPage,
  enter,
  joinRoom,
  js,
  pageTest,
  submit,
  untilActiveRoom,
  untilMembers,
  untilShown,
} from "./_page.ts";

/** The API requests recorded so far, as `METHOD /path` (query dropped), polls left out. */
function apiCalls(page: Page): string[] {
  return page.requests
    .map((r) => {
      const [method, url] = r.split(" ");
      return `${method} ${new URL(url!).pathname}`;
    })
    .filter((r) => r.includes(" /api/") && !r.endsWith(" /api/events"));
}

pageTest(
  "a reload with many joined rooms loads one room list and only the room shown",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    const names = Array.from({ length: 12 }, (_, i) => `room${i + 1}`);
    for (const name of names) await joinRoom(page, name);
    const bob = await client.session("bob");
    await client.join(bob.token, "room3");
    await client.send(bob.token, "room3", "in room 3");
    await page.evaluate(`document.querySelector('#room-tabs button[data-room="lobby"]').click()`);
    await untilActiveRoom(page, "lobby");

    await page.recordRequests();
    await page.reload();
    await untilActiveRoom(page, "lobby");
    await page.waitFor(`document.querySelectorAll("#room-list li").length === 13`, {
      what: "the room list",
    });
    // A second for anything still to come.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.deepEqual(apiCalls(page).sort(), ["GET /api/rooms", "POST /api/rooms/lobby/join"]);
    assert.equal(
      await page.evaluate(`document.querySelectorAll("#room-tabs button[data-room]").length`),
      13,
    );

    // Another room is loaded when it is shown.
    await page.evaluate(`document.querySelector('#room-tabs button[data-room="room3"]').click()`);
    await untilShown(page, "in room 3");
    await untilMembers(page, ["alice", "bob"]);
    assert.deepEqual(apiCalls(page).sort(), [
      "GET /api/rooms",
      "POST /api/rooms/lobby/join",
      "POST /api/rooms/room3/join",
    ]);
    assertCleanPage(page);
  },
);

/** What has the keyboard focus: its id, or its data-key in a list. */
const FOCUSED = `(() => {
  const el = document.activeElement;
  return el.id || (el.dataset.key ? el.closest("[id]").id + ":" + el.dataset.key : el.tagName);
})()`;

pageTest(
  "skip links lead to the composer and the messages, and the room list is one tab stop",
  async ({ url, browser, client }) => {
    const bob = await client.session("bob");
    for (const room of ["a1", "a2", "a3", "a4", "a5", "a6"]) await client.join(bob.token, room);
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    await page.waitFor(`document.querySelectorAll("#room-list li").length === 7`);

    // The skip links come first in the tab order, and show when focused.
    assert.deepEqual(
      await page.evaluate(
        `[...document.querySelectorAll("a[href], button, input, textarea, [tabindex]")]
        .filter((el) => el.tabIndex >= 0 && el.getClientRects().length > 0)
        .slice(0, 2).map((el) => el.textContent)`,
      ),
      ["Skip to the message composer", "Skip to the messages"],
    );
    await page.evaluate(`document.querySelector("a.skip").focus()`);
    assert.deepEqual(
      await page.evaluate(`(() => {
        const el = document.activeElement;
        const box = el.getBoundingClientRect();
        return [box.top >= 0 && box.bottom <= innerHeight, getComputedStyle(el).outlineStyle];
      })()`),
      [true, "solid"],
      "the focused skip link is in view, with a visible focus",
    );
    await page.press("Enter");
    assert.equal(await page.evaluate(FOCUSED), "send-input");
    assert.equal(await page.evaluate(`location.hash`), "#lobby", "the room stays in the address");

    await page.evaluate(`document.querySelector("a.skip").focus()`);
    await page.press("Tab");
    assert.equal(await page.evaluate(`document.activeElement.textContent`), "Skip to the messages");
    await page.press("Enter");
    assert.equal(await page.evaluate(FOCUSED), "scroller");
    assert.equal(await page.evaluate(`location.hash`), "#lobby");

    // The room list: one Tab in, arrows within, one Tab out.
    await page.evaluate(`document.getElementById("join-input").focus()`);
    await page.press("Tab"); // the Join button
    await page.press("Tab");
    assert.equal(await page.evaluate(FOCUSED), "room-list:lobby");
    await page.press("Home");
    assert.equal(await page.evaluate(FOCUSED), "room-list:a1");
    await page.press("ArrowDown");
    assert.equal(await page.evaluate(FOCUSED), "room-list:a2");
    await page.press("End");
    assert.equal(await page.evaluate(FOCUSED), "room-list:lobby");
    await page.press("ArrowUp");
    assert.equal(await page.evaluate(FOCUSED), "room-list:a6");
    await page.press("ArrowUp");
    assert.equal(await page.evaluate(FOCUSED), "room-list:a5");
    await page.press("Tab");
    assert.ok(
      !(await page.evaluate<string>(FOCUSED)).startsWith("room-list:"),
      "one Tab leaves the room list",
    );
    await page.press("Tab", { shift: true });
    assert.equal(await page.evaluate(FOCUSED), "room-list:a5", "and comes back where it was");
    await page.press("Enter");
    await untilActiveRoom(page, "a5");
    assertCleanPage(page);
  },
);

pageTest(
  "the room list's member counts follow joins and leaves at once",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    await joinRoom(page, "dev");
    const count = (room: string) =>
      `document.querySelector('#room-list button[data-key=${js(room)}] .count')?.textContent`;
    await page.waitFor(`${count("lobby")} === "1" && ${count("dev")} === "1"`);

    const bob = await client.session("bob");
    await client.join(bob.token, "lobby");
    await client.join(bob.token, "dev");
    await page.waitFor(`${count("lobby")} === "2" && ${count("dev")} === "2"`, {
      timeoutMs: 3000,
      what: "both counts to be 2",
    });
    await client.call("POST", "/api/rooms/lobby/leave", { token: bob.token });
    await page.waitFor(`${count("lobby")} === "1" && ${count("dev")} === "2"`, {
      timeoutMs: 3000,
      what: "lobby back to 1",
    });
    assertCleanPage(page);
  },
);

pageTest(
  "room names from the address are checked before any request, and notices belong to a room",
  async ({ url, browser }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    await page.recordRequests();
    for (const bad of ["..", "%2E%2E", "a%2Fb", "-x"]) {
      await page.evaluate(`location.hash = ${js(bad)}`);
      await page.waitFor(`document.getElementById("notice").textContent.includes("not a room")`, {
        what: `the notice about #${bad}`,
      });
      await untilActiveRoom(page, "lobby");
      await page.evaluate(`document.getElementById("notice").textContent = ""`);
    }
    const calls = apiCalls(page);
    assert.deepEqual(calls, [], `no request for an invalid room: ${calls}`);

    // A valid name with letters that need escaping: percent-encoded in the path.
    await page.evaluate(`location.hash = "café"`);
    await untilActiveRoom(page, "café");
    assert.ok(apiCalls(page).includes("POST /api/rooms/caf%C3%A9/join"), `${apiCalls(page)}`);

    // A notice in one room is gone when another room is shown.
    await submit(page, "x".repeat(2001));
    await page.waitFor(`document.getElementById("notice").textContent !== ""`);
    await page.evaluate(`document.querySelector('#room-tabs button[data-room="lobby"]').click()`);
    await untilActiveRoom(page, "lobby");
    assert.equal(await page.evaluate(`document.getElementById("notice").textContent`), "");

    // Names kept in the browser are checked too (storage can hold anything).
    await page.evaluate(
      `localStorage.setItem("parley.rooms", JSON.stringify(["lobby", "..", "a/b"]))`,
    );
    await page.reload();
    await untilActiveRoom(page, "lobby");
    assert.deepEqual(
      await page.evaluate(`[...document.querySelectorAll("#room-tabs button[data-room]")]
        .map((b) => b.dataset.room)`),
      ["lobby"],
    );
    assert.ok(page.requests.every((r) => !r.includes("/api/join") && !r.includes("a/b")));
    assertCleanPage(page);
  },
);

pageTest("long member lists load page by page", async ({ url, browser, client }) => {
  const nicks: string[] = [];
  for (let i = 0; i < 130; i++) {
    const nick = `m${String(i).padStart(3, "0")}`;
    const { token } = await client.session(nick);
    await client.join(token, "big");
    nicks.push(nick);
  }
  const page = await browser.newPage();
  await enter(page, `${url}/#big`, "alice");
  await untilActiveRoom(page, "big");
  const shown = `document.querySelectorAll("#members li[data-nick]").length`;
  await page.waitFor(`${shown} === 100`, { what: "the first 100 members" });
  assert.equal(
    await page.evaluate(`document.getElementById("members-title").textContent`),
    "Members (131)",
  );
  assert.equal(await page.evaluate(`document.getElementById("members-more").hidden`), false);
  await page.evaluate(`document.getElementById("members-more").click()`);
  await page.waitFor(`${shown} === 131`, { what: "all 131 members" });
  await untilMembers(page, [...nicks, "alice"]);
  assert.equal(await page.evaluate(`document.getElementById("members-more").hidden`), true);
  assertCleanPage(page);
});
