/**
 * Helpers of the browser tests: a test with a real server and a headless Chromium, and what a
 * person does on the page (enter a nick, send, wait for a message). Chromium is driven over the
 * DevTools protocol by `./_cdp.ts`.
 */
import assert from "node:assert/strict";
import type { App } from "../../lib/app.ts";
import { type ApiClient, withServer } from "../_server.ts";
import { Browser, findChromium, type Page } from "./_cdp.ts";

export const CHROMIUM = findChromium();
const IN_CI = Boolean(Deno.env.get("CI"));

/** Where the tests write screenshots (git ignores it). */
export const SCREENSHOTS = new URL("./screenshots/", import.meta.url).pathname;

/** What a test gets: the server's address and API client, and a running browser. */
export interface PageContext {
  url: string;
  client: ApiClient;
  browser: Browser;
  app: App;
}

/** Options of {@linkcode pageTest}. */
export interface PageTestOptions {
  /** Server flags beyond the test defaults (memory store, no rate limits). */
  flags?: string[];
  /** The moderators' secret: written to a file the server reads (`--admin-token-file`). */
  adminSecret?: string;
}

/**
 * Registers a test with a fresh server and browser, both always shut down. Without Chromium it is
 * ignored, except in CI, where it fails.
 */
export function pageTest(
  name: string,
  fn: (context: PageContext) => Promise<void>,
  options: PageTestOptions = {},
): void {
  Deno.test({
    name: CHROMIUM
      ? name
      : IN_CI
      ? `${name} (fails: chromium is required in CI)`
      : `${name} (ignored: chromium is not installed)`,
    ignore: !CHROMIUM && !IN_CI,
    async fn() {
      if (!CHROMIUM) throw new Error("chromium is required in CI");
      const flags = [...options.flags ?? []];
      const adminFile = options.adminSecret === undefined ? null : await Deno.makeTempFile();
      try {
        if (adminFile) {
          await Deno.writeTextFile(adminFile, options.adminSecret!);
          flags.push("--admin-token-file", adminFile);
        }
        await withServer({ flags }, async (app, client) => {
          const browser = await Browser.launch({ path: CHROMIUM });
          try {
            await fn({ url: app.url, client, browser, app });
          } catch (error) {
            if (error instanceof Error) error.message += await diagnostics(browser);
            throw error;
          } finally {
            // Before the server shuts down, so no poll of the page is left waiting on it.
            await browser.close();
          }
        });
      } finally {
        if (adminFile) await Deno.remove(adminFile);
      }
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
      status: document.getElementById("status")?.textContent,
      notice: document.getElementById("notice")?.textContent,
      nickError: document.getElementById("nick-error")?.textContent,
      messages: [...document.querySelectorAll("#messages li")].map((li) => li.textContent),
    })`,
      1000,
    ).catch((error) => `(cannot evaluate: ${error})`);
    parts.push(
      `--- page: ${shown}\n    errors: ${js(page.errors)} dialogs: ${js(page.dialogs)}` +
        `\n    console: ${js(page.console.slice(-10))}`,
    );
  }
  const log = browser.stderr.split("\n").filter((line) => line && !line.includes("dbus"));
  parts.push(`--- chromium stderr (tail) ---\n${log.slice(-20).join("\n")}`);
  return `\n${parts.join("\n")}`;
}

/** A JavaScript literal of `value`, to embed in an expression. */
export const js = (value: unknown): string => JSON.stringify(value);

/** One rendered message (`li.message`) of `#messages`. */
export interface ShownMessage {
  id: string | null;
  nick: string;
  text: string;
  own: boolean;
  pending: boolean;
  /** Marked "(edited)". */
  edited: boolean;
  /** Shown as "message deleted", without its text. */
  deleted: boolean;
  /** A `/me` message. */
  action: boolean;
  /** The `data-action` of its controls (`edit`, `delete`). */
  controls: string[];
}

export const SHOWN_MESSAGES = `[...document.querySelectorAll("#messages li.message")].map((li) => ({
  id: li.dataset.id ?? null,
  nick: li.querySelector(".nick")?.textContent ?? "",
  text: li.querySelector(".text")?.textContent ?? "",
  own: li.classList.contains("own"),
  pending: li.classList.contains("pending"),
  edited: li.querySelector(".edited") !== null,
  deleted: li.classList.contains("deleted"),
  action: li.classList.contains("action"),
  controls: [...li.querySelectorAll(".actions button")].map((b) => b.dataset.action),
}))`;

/** The messages the page shows now. */
export function shownMessages(page: Page): Promise<ShownMessage[]> {
  return page.evaluate<ShownMessage[]>(SHOWN_MESSAGES);
}

/** Waits until the page shows a stored (not pending) message with `text`; returns it. */
export function untilShown(page: Page, text: string, timeoutMs = 8000): Promise<ShownMessage> {
  return page.waitFor<ShownMessage>(
    `${SHOWN_MESSAGES}.find((m) => m.id !== null && !m.pending && m.text === ${js(text)})`,
    { timeoutMs, what: `message ${js(text)} in #messages` },
  );
}

/**
 * Submits `nick` in the nick form of a page that shows it (with the moderators' secret when
 * `admin` is given), and waits until the chat is shown.
 */
export async function logIn(page: Page, nick: string, admin = ""): Promise<void> {
  await page.waitFor(`!document.getElementById("login").hidden`, { what: "the nick form" });
  await page.evaluate(`(() => {
    document.getElementById("nick-input").value = ${js(nick)};
    if (${js(admin)}) document.getElementById("admin-input").value = ${js(admin)};
    document.getElementById("nick-form").requestSubmit();
  })()`);
  await page.waitFor(`!document.getElementById("chat").hidden`, { what: `the chat of ${nick}` });
}

/** Opens `url`, submits `nick` in the nick form, and waits until the chat is shown. */
export async function enter(page: Page, url: string, nick: string, admin = ""): Promise<void> {
  await page.navigate(url);
  await logIn(page, nick, admin);
}

/** Clicks the element `selector` finds; throws when there is none. */
export async function click(page: Page, selector: string): Promise<void> {
  await page.evaluate(`(() => {
    const el = document.querySelector(${js(selector)});
    if (!el) throw new Error("nothing to click at " + ${js(selector)});
    el.click();
  })()`);
}

/** Waits until the message with `text` shows the control `action`, and clicks it. */
export async function clickMessageControl(page: Page, text: string, action: string) {
  const id = (await untilShown(page, text)).id;
  const selector = `#messages li[data-id="${id}"] [data-action="${action}"]`;
  await page.waitFor(`document.querySelector(${js(selector)}) !== null`, {
    what: `the ${action} control of ${js(text)}`,
  });
  await click(page, selector);
}

/** The text of the element with `id` (trimmed), or null when it is hidden or missing. */
export function shownText(page: Page, id: string): Promise<string | null> {
  return page.evaluate(`(() => {
    const el = document.getElementById(${js(id)});
    return el && !el.hidden && el.checkVisibility() ? el.textContent.trim() : null;
  })()`);
}

/** Waits until the element with `id` shows `text` (null: until it is hidden or empty). */
export async function untilText(page: Page, id: string, text: string | null): Promise<void> {
  await page.waitFor(
    `(() => {
      const el = document.getElementById(${js(id)});
      const shown = el && !el.hidden && el.checkVisibility() ? el.textContent.trim() : "";
      return ${text === null ? `shown === ""` : `shown === ${js(text)}`};
    })()`,
    { what: `#${id} to show ${js(text)}` },
  );
}

/** Confirms the open dialog, after filling its fields (`minutes` too when given). */
export async function confirmDialog(
  page: Page,
  fields: { field?: string; minutes?: number } = {},
): Promise<void> {
  await page.waitFor(`document.getElementById("dialog").open`, { what: "the dialog" });
  await page.evaluate(`(() => {
    if (${js(fields.field ?? null)} !== null) {
      document.getElementById("dialog-field").value = ${js(fields.field ?? "")};
    }
    if (${js(fields.minutes ?? null)} !== null) {
      document.getElementById("dialog-minutes").value = ${js(String(fields.minutes ?? ""))};
    }
    document.getElementById("dialog-ok").click();
  })()`);
  await page.waitFor(`!document.getElementById("dialog").open`, { what: "the dialog to close" });
}

/** What overflows the viewport sideways: the page's scroll width and rows wider than the screen. */
export async function overflow(
  page: Page,
): Promise<{ scroll: number; width: number; wide: string[] }> {
  return await page.evaluate(`(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll("body *")]
      .filter((el) => el.getClientRects().length > 0)
      .filter((el) => el.closest(".skip-links") === null)
      .filter((el) => el.getBoundingClientRect().right > width + 1)
      .filter((el) => getComputedStyle(el.parentElement).overflowX !== "auto")
      .map((el) => el.id || el.className || el.tagName);
    return { scroll: document.documentElement.scrollWidth, width, wide };
  })()`);
}

/** Records Content-Security-Policy violations in `window.__violations` (an init script). */
export const CSP_RECORDER = `
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
  });
`;

/** No Content-Security-Policy violation was recorded ({@linkcode CSP_RECORDER}) or logged. */
export async function assertNoCspViolations(page: Page): Promise<void> {
  assert.deepEqual(await page.evaluate(`window.__violations`), []);
  assert.deepEqual(page.console.filter((line) => /Content Security Policy/i.test(line)), []);
}

/** Waits until the tab of `room` is there and is the current one. */
export async function untilActiveRoom(page: Page, room: string): Promise<void> {
  await page.waitFor(
    `document.querySelector('#room-tabs button[data-room=${js(room)}]')
      ?.getAttribute("aria-current") === "page"`,
    { what: `the tab of #${room} to be current` },
  );
}

/** The rooms shown as tabs, in order. */
export function roomTabs(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(
    `[...document.querySelectorAll("#room-tabs button[data-room]")].map((b) => b.dataset.room)`,
  );
}

/** Waits until `#members` lists exactly `nicks`. */
export async function untilMembers(page: Page, nicks: string[]): Promise<void> {
  const expected = js([...nicks].sort());
  await page.waitFor(
    `JSON.stringify([...document.querySelectorAll("#members li[data-nick]")]
      .map((li) => li.dataset.nick).sort()) === ${js(expected)}`,
    { what: `#members to be ${expected}` },
  );
}

/** Sends `text` by typing it into `#send-input` and pressing Enter (which submits the form). */
export async function typeAndSend(page: Page, text: string): Promise<void> {
  await page.evaluate(`document.getElementById("send-input").focus()`);
  await page.insertText(text);
  assert.equal(await page.evaluate(`document.getElementById("send-input").value`), text);
  await page.pressEnter();
}

/** Sends `text` by setting `#send-input` and submitting `#send-form`. */
export async function submit(page: Page, text: string): Promise<void> {
  await page.evaluate(`(() => {
    document.getElementById("send-input").value = ${js(text)};
    document.getElementById("send-form").requestSubmit();
  })()`);
}

/** Joins (or shows) `room` through the join form, and waits until it is the current room. */
export async function joinRoom(page: Page, room: string): Promise<void> {
  await page.evaluate(`(() => {
    document.getElementById("join-input").value = ${js(room)};
    document.getElementById("join-form").requestSubmit();
  })()`);
  await untilActiveRoom(page, room);
}

/** How many shown messages have `text`. */
export async function countShown(page: Page, text: string): Promise<number> {
  return (await shownMessages(page)).filter((m) => m.text === text).length;
}

/** Nothing went wrong in the page: no uncaught errors, no dialogs. */
export function assertCleanPage(page: Page): void {
  assert.deepEqual(page.errors, [], "uncaught errors in the page");
  assert.deepEqual(page.dialogs, [], "dialogs opened by the page");
}

/** The messages of `room` that `token` can read, oldest first (texts only). */
export async function roomTexts(client: ApiClient, token: string, room: string): Promise<string[]> {
  const res = await client.call(
    "GET",
    `/api/rooms/${encodeURIComponent(room)}/history?limit=200`,
    { token },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.events
    .filter((ev: { type: string }) => ev.type === "message")
    .map((ev: { text: string }) => ev.text);
}

/** Writes a screenshot of `page` as `name`.png into {@linkcode SCREENSHOTS}. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  const path = `${SCREENSHOTS}${name}.png`;
  await page.screenshot(path);
  return path;
}
