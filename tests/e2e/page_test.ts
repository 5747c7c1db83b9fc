/**
 * The page of DESIGN.md ("The page") in a real headless Chromium against a real server: two people
 * who just arrived can talk at once, a reload continues the session and shows the history, the
 * room in the URL fragment is joined, chat text is rendered as text, and the nick form shows the
 * server's errors. Chromium is driven over the DevTools protocol by `./_cdp.ts`.
 */
import assert from "node:assert/strict";
import { type ApiClient, withServer } from "../_server.ts";
import { Browser, findChromium, type Page } from "./_cdp.ts";

const CHROMIUM = findChromium();
const IN_CI = Boolean(Deno.env.get("CI"));

/** What a test gets: the server's address and API client, and a running browser. */
interface PageContext {
  url: string;
  client: ApiClient;
  browser: Browser;
}

/**
 * Registers a test with a fresh server and browser, both always shut down. Without Chromium it is
 * ignored, except in CI, where it fails.
 */
function pageTest(name: string, fn: (context: PageContext) => Promise<void>): void {
  Deno.test({
    name: CHROMIUM
      ? name
      : IN_CI
      ? `${name} (fails: chromium is required in CI)`
      : `${name} (ignored: chromium is not installed)`,
    ignore: !CHROMIUM && !IN_CI,
    async fn() {
      if (!CHROMIUM) throw new Error("chromium is required in CI");
      await withServer({}, async (app, client) => {
        const browser = await Browser.launch({ path: CHROMIUM });
        try {
          await fn({ url: app.url, client, browser });
        } catch (error) {
          if (error instanceof Error) error.message += await diagnostics(browser);
          throw error;
        } finally {
          // Before the server shuts down, so no poll of the page is left waiting on it.
          await browser.close();
        }
      });
    },
  });
}

/** What the pages show and what Chromium logged, appended to a failure's message. */
async function diagnostics(browser: Browser): Promise<string> {
  const parts: string[] = [];
  for (const page of browser.pages) {
    const shown = await page.evaluate(
      `JSON.stringify({
      url: location.href,
      status: document.getElementById("status").textContent,
      notice: document.getElementById("notice").textContent,
      nickError: document.getElementById("nick-error").textContent,
      messages: [...document.querySelectorAll("#messages li")].map((li) => li.textContent),
    })`,
      1000,
    ).catch((error) => `(cannot evaluate: ${error})`);
    parts.push(`--- page: ${shown}\n    errors: ${js(page.errors)} dialogs: ${js(page.dialogs)}`);
  }
  const log = browser.stderr.split("\n").filter((line) => line && !line.includes("dbus"));
  parts.push(`--- chromium stderr (tail) ---\n${log.slice(-20).join("\n")}`);
  return `\n${parts.join("\n")}`;
}

/** A JavaScript literal of `value`, to embed in an expression. */
const js = (value: unknown): string => JSON.stringify(value);

/** One rendered message (`li.message`) of `#messages`. */
interface ShownMessage {
  id: string | null;
  nick: string;
  text: string;
  own: boolean;
  pending: boolean;
}

const SHOWN_MESSAGES = `[...document.querySelectorAll("#messages li.message")].map((li) => ({
  id: li.dataset.id ?? null,
  nick: li.querySelector(".nick")?.textContent ?? "",
  text: li.querySelector(".text")?.textContent ?? "",
  own: li.classList.contains("own"),
  pending: li.classList.contains("pending"),
}))`;

/** The messages the page shows now. */
function shownMessages(page: Page): Promise<ShownMessage[]> {
  return page.evaluate<ShownMessage[]>(SHOWN_MESSAGES);
}

/** Waits until the page shows a stored (not pending) message with `text`; returns it. */
function untilShown(page: Page, text: string, timeoutMs = 8000): Promise<ShownMessage> {
  return page.waitFor<ShownMessage>(
    `${SHOWN_MESSAGES}.find((m) => m.id !== null && !m.pending && m.text === ${js(text)})`,
    { timeoutMs, what: `message ${js(text)} in #messages` },
  );
}

/** Opens `url`, submits `nick` in the nick form, and waits until the chat is shown. */
async function enter(page: Page, url: string, nick: string): Promise<void> {
  await page.navigate(url);
  await page.waitFor(`!document.getElementById("login").hidden`, { what: "the nick form" });
  await page.evaluate(`(() => {
    document.getElementById("nick-input").value = ${js(nick)};
    document.getElementById("nick-form").requestSubmit();
  })()`);
  await page.waitFor(`!document.getElementById("chat").hidden`, { what: `the chat of ${nick}` });
}

/** Waits until the tab of `room` is there and is the current one. */
async function untilActiveRoom(page: Page, room: string): Promise<void> {
  await page.waitFor(
    `document.querySelector('#room-tabs button[data-room=${js(room)}]')
      ?.getAttribute("aria-current") === "page"`,
    { what: `the tab of #${room} to be current` },
  );
}

/** Waits until `#members` lists exactly `nicks`. */
async function untilMembers(page: Page, nicks: string[]): Promise<void> {
  const expected = js([...nicks].sort());
  await page.waitFor(
    `JSON.stringify([...document.querySelectorAll("#members li[data-nick]")]
      .map((li) => li.dataset.nick).sort()) === ${js(expected)}`,
    { what: `#members to be ${expected}` },
  );
}

/** Sends `text` by typing it into `#send-input` and pressing Enter (which submits the form). */
async function typeAndSend(page: Page, text: string): Promise<void> {
  await page.evaluate(`document.getElementById("send-input").focus()`);
  await page.insertText(text);
  assert.equal(await page.evaluate(`document.getElementById("send-input").value`), text);
  await page.pressEnter();
}

/** Sends `text` by setting `#send-input` and submitting `#send-form`. */
async function submit(page: Page, text: string): Promise<void> {
  await page.evaluate(`(() => {
    document.getElementById("send-input").value = ${js(text)};
    document.getElementById("send-form").requestSubmit();
  })()`);
}

/** How many shown messages have `text`. */
async function countShown(page: Page, text: string): Promise<number> {
  return (await shownMessages(page)).filter((m) => m.text === text).length;
}

/** Nothing went wrong in the page: no uncaught errors, no dialogs. */
function assertCleanPage(page: Page): void {
  assert.deepEqual(page.errors, [], "uncaught errors in the page");
  assert.deepEqual(page.dialogs, [], "dialogs opened by the page");
}

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
