/**
 * The page of DESIGN.md ("The page") in a real headless Chromium against a real server: two people
 * who just arrived can talk at once, a reload continues the session and shows the history, the
 * room in the URL fragment is joined, chat text is rendered as text, and the nick form shows the
 * server's errors.
 */
import assert from "node:assert/strict";
import {
  assertCleanPage,
  countShown,
  enter,
  js,
  pageTest,
  shownMessages,
  submit,
  typeAndSend,
  untilActiveRoom,
  untilMembers,
  untilShown,
} from "./_page.ts";

pageTest("page: two people who just arrived can talk at once", async ({ url, browser }) => {
  const a = await browser.newPage();
  const b = await browser.newPage();
  await enter(a, `${url}/#lobby`, "alice");
  await untilActiveRoom(a, "lobby");
  await enter(b, `${url}/#lobby`, "bob");
  await untilActiveRoom(b, "lobby");
  await untilMembers(b, ["alice", "bob"]);
  await untilMembers(a, ["alice", "bob"]); // bob's join reached alice by the poll

  await typeAndSend(a, "hello from A");
  assert.equal(await a.evaluate(`document.getElementById("send-input").value`), "");
  const seen = await untilShown(b, "hello from A");
  assert.equal(seen.nick, "alice");
  assert.equal(seen.own, false);

  // bob answers; once alice sees that, her poll has passed her own message too (one total order).
  await submit(b, "hi from B");
  await untilShown(a, "hi from B");
  const mine = (await shownMessages(a)).filter((m) => m.text === "hello from A");
  assert.equal(mine.length, 1, `alice's message shown once: ${js(mine)}`);
  assert.equal(mine[0]?.own, true);
  assert.equal(mine[0]?.pending, false);
  assert.equal(mine[0]?.id, seen.id);
  assert.equal(await countShown(b, "hello from A"), 1);
  assert.equal(await countShown(b, "hi from B"), 1);
  assert.equal(
    (await shownMessages(a)).find((m) => m.text === "hi from B")?.own,
    false,
  );
  assertCleanPage(a);
  assertCleanPage(b);
});

pageTest("page: a reload continues the same session and shows the history", async (context) => {
  const { url, browser, client } = context;
  const a = await browser.newPage();
  const b = await browser.newPage();
  await enter(a, `${url}/#lobby`, "alice");
  await untilActiveRoom(a, "lobby");
  await enter(b, `${url}/#lobby`, "bob");
  await untilActiveRoom(b, "lobby");
  await submit(a, "first from A");
  await untilShown(a, "first from A");
  await submit(b, "second from B");
  await untilShown(a, "second from B");
  const token = await a.evaluate<string>(`localStorage.getItem("parley.token")`);
  assert.ok(token, "the token is kept in the browser's storage");

  await a.reload();
  await a.waitFor(`document.getElementById("login").hidden`, { what: "no nick form" });
  assert.equal(await a.evaluate(`document.getElementById("chat").hidden`), false);
  assert.equal(await a.evaluate(`document.getElementById("me").textContent`), "Signed in as alice");
  assert.equal(await a.evaluate(`localStorage.getItem("parley.token")`), token);
  await untilActiveRoom(a, "lobby");
  const first = await untilShown(a, "first from A");
  assert.equal(first.own, true);
  assert.equal((await untilShown(a, "second from B")).own, false);
  await untilMembers(a, ["alice", "bob"]);

  await submit(b, "third from B");
  await untilShown(a, "third from B");
  for (const text of ["first from A", "second from B", "third from B"]) {
    assert.equal(await countShown(a, text), 1, `${text} shown once after the reload`);
  }
  // The same session: nobody new in the room, and bob saw alice join only once.
  const rooms = await client.call("GET", "/api/rooms");
  assert.deepEqual(rooms.body.rooms, [{ name: "lobby", members: 2 }]);
  assert.equal(
    await b.evaluate(`[...document.querySelectorAll("#messages li.system")]
      .filter((li) => li.textContent.includes("alice joined")).length`),
    1,
  );
  assertCleanPage(a);
  assertCleanPage(b);
});

pageTest("page: the room in the URL fragment is joined", async ({ url, browser, client }) => {
  const page = await browser.newPage();
  await enter(page, `${url}/#dev`, "carol");
  await untilActiveRoom(page, "dev");
  assert.deepEqual(
    await page.evaluate(
      `[...document.querySelectorAll("#room-tabs button[data-room]")].map((b) => b.dataset.room)`,
    ),
    ["dev"],
  );
  assert.equal(await page.evaluate(`location.hash`), "#dev");
  await untilMembers(page, ["carol"]);
  await submit(page, "in dev");
  assert.equal((await untilShown(page, "in dev")).own, true);

  const rooms = await client.call("GET", "/api/rooms");
  assert.equal(rooms.status, 200);
  assert.deepEqual(rooms.body.rooms, [{ name: "dev", members: 1 }]);
  // The message went to dev: a newcomer there gets it with the join's history.
  const { token } = await client.session("observer");
  const joined = await client.join(token, "dev");
  assert.equal(joined.status, 200);
  const messages = joined.body.history.filter((ev: { type: string }) => ev.type === "message");
  assert.equal(messages.length, 1);
  assert.equal(messages[0].room, "dev");
  assert.equal(messages[0].nick, "carol");
  assert.equal(messages[0].text, "in dev");
  assertCleanPage(page);
});

pageTest("page: chat text is rendered as text, not HTML", async ({ url, browser }) => {
  const evil = "<img src=x onerror=alert(1)>";
  const a = await browser.newPage();
  const b = await browser.newPage();
  await enter(a, `${url}/#lobby`, "alice");
  await untilActiveRoom(a, "lobby");
  await enter(b, `${url}/#lobby`, "bob");
  await untilActiveRoom(b, "lobby");
  await untilMembers(a, ["alice", "bob"]);
  await submit(a, evil);
  await untilShown(a, evil); // rendered from the send answer
  await untilShown(b, evil); // rendered from the poll
  // A later message has arrived, so an image that had been created would have failed by now.
  await submit(b, "after");
  await untilShown(a, "after");
  await untilShown(b, "after");
  for (const page of [a, b]) {
    assert.equal(await page.evaluate(`document.querySelectorAll("#messages img").length`), 0);
    assert.equal(
      await page.evaluate(`document.querySelector("#messages li.message .text").textContent`),
      evil,
    );
    assertCleanPage(page);
  }
});

pageTest("page: the nick form shows the server's error for a taken nick", async (context) => {
  const { url, browser, client } = context;
  await client.session("dave");
  const taken = await client.call("POST", "/api/session", { body: { nick: "dave" } });
  assert.equal(taken.status, 409);
  const message = taken.body.error.message;
  assert.ok(message);

  const page = await browser.newPage();
  await page.navigate(`${url}/#lobby`);
  await page.waitFor(`!document.getElementById("login").hidden`, { what: "the nick form" });
  await page.evaluate(`(() => {
    document.getElementById("nick-input").value = "dave";
    document.getElementById("nick-form").requestSubmit();
  })()`);
  await page.waitFor(`document.getElementById("nick-error").textContent === ${js(message)}`, {
    what: `#nick-error to be ${js(message)}`,
  });
  assert.equal(await page.evaluate(`document.getElementById("login").hidden`), false);
  assert.equal(await page.evaluate(`document.getElementById("chat").hidden`), true);
  assert.equal(await page.evaluate(`localStorage.getItem("parley.token")`), null);
  assert.equal(
    await page.evaluate(`document.getElementById("nick-input").getAttribute("aria-invalid")`),
    "true",
  );
  assertCleanPage(page);
});
