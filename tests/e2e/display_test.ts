/**
 * How the page shows people and their text (issues 9 and 12): own messages are those this session
 * sent; text, nicks and room names take their own direction; http(s) links are clickable and
 * nothing else is; one's own nick is highlighted where others mention it; long names never make
 * the page scroll sideways; and the page runs under its Content-Security-Policy without a
 * violation. Screenshots go to `tests/e2e/screenshots/`.
 */
import assert from "node:assert/strict";
import {
  assertCleanPage,
  CSP_RECORDER,
  enter,
  joinRoom,
  js,
  logIn,
  overflow,
  pageTest,
  screenshot,
  shownMessages,
  submit,
  untilActiveRoom,
  untilMembers,
  untilShown,
} from "./_page.ts";

pageTest(
  "own messages are those this session sent, not those of an earlier holder of the nick",
  async ({ url, browser }) => {
    const first = await browser.newPage();
    await enter(first, `${url}/#lobby`, "alice");
    await untilActiveRoom(first, "lobby");
    await submit(first, "from the first alice");
    assert.equal((await untilShown(first, "from the first alice")).own, true);
    await first.evaluate(`document.getElementById("logout").click()`);
    await first.waitFor(`!document.getElementById("login").hidden`, { what: "logged out" });

    // Someone else, in another browser, takes the nick that is free now.
    const second = await browser.newPage();
    await enter(second, `${url}/#lobby`, "alice");
    await untilActiveRoom(second, "lobby");
    const earlier = await untilShown(second, "from the first alice");
    assert.equal(earlier.nick, "alice");
    assert.equal(earlier.own, false, "the earlier alice's message is not shown as own");
    await submit(second, "from the second alice");
    assert.equal((await untilShown(second, "from the second alice")).own, true);
    await second.reload();
    await untilActiveRoom(second, "lobby");
    await untilShown(second, "from the second alice");
    assert.deepEqual(
      (await shownMessages(second)).map((m) => [m.text, m.own]),
      [["from the first alice", false], ["from the second alice", true]],
    );
    assertCleanPage(second);
  },
);

pageTest(
  "message text, nicks and room names take their own direction",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#שיחה`, "alice");
    await untilActiveRoom(page, "שיחה");
    const dana = await client.session("דנה");
    await client.join(dana.token, "שיחה");
    const hebrew = "שלום, מה שלומך?";
    await client.send(dana.token, "שיחה", hebrew);
    await submit(page, "hello, how are you?");
    await untilShown(page, hebrew);
    await untilShown(page, "hello, how are you?");
    const dirs = await page.evaluate(`(() => {
      const dir = (el) => el && ({ attr: el.getAttribute("dir"), rtl: el.matches(":dir(rtl)") });
      const message = (text) => [...document.querySelectorAll("#messages li.message")]
        .find((li) => li.querySelector(".text").textContent === text);
      const hebrew = message(${js(hebrew)});
      const english = message("hello, how are you?");
      return {
        hebrewText: dir(hebrew.querySelector(".text")),
        hebrewNick: dir(hebrew.querySelector(".nick")),
        englishText: dir(english.querySelector(".text")),
        title: dir(document.getElementById("room-title")),
        tab: dir(document.querySelector("#room-tabs button[data-room] .room-name")),
        listed: dir(document.querySelector("#room-list .room-name")),
        member: dir(document.querySelector('#members li[data-nick="דנה"] .nick')),
      };
    })()`);
    assert.deepEqual(dirs, {
      hebrewText: { attr: "auto", rtl: true },
      hebrewNick: { attr: "auto", rtl: true },
      englishText: { attr: "auto", rtl: false },
      title: { attr: "auto", rtl: true },
      tab: { attr: "auto", rtl: true },
      listed: { attr: "auto", rtl: true },
      member: { attr: "auto", rtl: true },
    });
    assertCleanPage(page);
  },
);

pageTest(
  "http and https links are clickable and safe; a javascript: link stays text",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    const bob = await client.session("bob");
    await client.join(bob.token, "lobby");
    const text = "see https://example.com/a?b=1&c=(2). or javascript:alert(document.domain) " +
      "or http://example.org, not data:text/html,<b>x</b> nor JaVaScRiPt:alert(1)//http://x";
    await client.send(bob.token, "lobby", text);
    await client.send(bob.token, "lobby", "javascript:alert(1)");
    await untilShown(page, text);
    await untilShown(page, "javascript:alert(1)");
    const links = await page.evaluate(`[...document.querySelectorAll("#messages a")].map((a) => ({
      href: a.getAttribute("href"),
      text: a.textContent,
      rel: a.rel,
      target: a.target,
    }))`);
    assert.deepEqual(links, [
      {
        href: "https://example.com/a?b=1&c=(2)",
        text: "https://example.com/a?b=1&c=(2)",
        rel: "noopener noreferrer",
        target: "_blank",
      },
      {
        href: "http://example.org/",
        text: "http://example.org",
        rel: "noopener noreferrer",
        target: "_blank",
      },
      { href: "http://x/", text: "http://x", rel: "noopener noreferrer", target: "_blank" },
    ]);
    // The whole text is still there, word for word, and nothing but links was made of it.
    const shown = await shownMessages(page);
    assert.ok(shown.some((m) => m.text === "javascript:alert(1)"));
    assert.equal(
      await page.evaluate(
        `document.querySelectorAll("#messages li.message .text *:not(a)").length`,
      ),
      0,
    );
    assertCleanPage(page);
  },
);

pageTest(
  "one's own nick is highlighted where others mention it, and new messages are announced",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    const bob = await client.session("bob");
    await client.join(bob.token, "lobby");
    await client.send(bob.token, "lobby", "hi @alice, and Alice again; not malice or alice_b");
    await submit(page, "I am alice");
    await untilShown(page, "I am alice");
    await untilShown(page, "hi @alice, and Alice again; not malice or alice_b");
    assert.deepEqual(
      await page.evaluate(`[...document.querySelectorAll("#messages mark.mention")]
        .map((m) => m.textContent)`),
      ["@alice", "Alice"],
    );
    assert.equal(
      await page.evaluate(`document.querySelectorAll("#messages li.own mark").length`),
      0,
      "no highlight in one's own messages",
    );
    // The list is a live log: what comes in is read out by screen readers.
    assert.deepEqual(
      await page.evaluate(`(() => {
        const log = document.getElementById("messages");
        return [log.getAttribute("role"), log.getAttribute("aria-live"),
          log.lastElementChild.textContent.includes("alice")];
      })()`),
      ["log", "polite", true],
    );
    assertCleanPage(page);
  },
);

const LONG_NICK = "Bartholomew_Featherstonehaugh_III"; // 33 > 32: the server's limit is 32
const NICK32 = LONG_NICK.slice(0, 32);
const LONG_ROOM = "the-quite-extraordinarily-long-room-name-for-a-very-small-screen-";

pageTest(
  "long names never make the page scroll sideways, from 320 px to a desktop",
  async ({ url, browser, client }) => {
    const room = LONG_ROOM.slice(0, 64);
    const page = await browser.newPage();
    await page.setViewport(1280, 800, false);
    await enter(page, `${url}/#lobby`, NICK32);
    await untilActiveRoom(page, "lobby");
    await joinRoom(page, room);
    const bob = await client.session("bob");
    await client.join(bob.token, room);
    await client.send(
      bob.token,
      room,
      `${NICK32}: https://example.com/${
        "very-long-path/".repeat(8)
      } and a wordwithoutanyspacesthatgoesonandonandonforever`,
    );
    await client.send(bob.token, room, "שלום, מה שלומך?");
    await submit(page, "Hello everyone, I have a rather long nick.");
    await untilShown(page, "Hello everyone, I have a rather long nick.");
    await untilMembers(page, [NICK32, "bob"]);
    await screenshot(page, "desktop-1280");

    const screens = [[390, 844, "phone-390"], [320, 640, "narrow-320"]] as const;
    for (const [width, height, name] of screens) {
      await page.setViewport(width, height);
      await page.waitFor(`document.documentElement.clientWidth === ${width}`);
      const seen = await overflow(page);
      assert.equal(seen.scroll, seen.width, `nothing scrolls sideways at ${width} px`);
      assert.deepEqual(seen.wide, [], `nothing sticks out at ${width} px`);
      const sizes = await page.evaluate(`(() => {
        const line = parseFloat(getComputedStyle(document.body).lineHeight) || 22;
        const h = (id) => document.getElementById(id).getBoundingClientRect().height;
        return {
          title: h("room-title") / line,
          composer: h("send-input") / line,
          titleText: document.getElementById("room-title").title,
          nickTitle: document.querySelector("#messages li.own .nick").title,
        };
      })()`);
      assert.ok(sizes.title < 1.6, `the room title is one line at ${width} px: ${js(sizes)}`);
      assert.ok(sizes.composer < 2.6, `the composer stays small at ${width} px: ${js(sizes)}`);
      assert.equal(sizes.titleText, `#${room}`);
      assert.equal(sizes.nickTitle, NICK32);
      await screenshot(page, name);
      // The sidebar, opened: the long room keeps its member count in view.
      await page.evaluate(`document.getElementById("toggle-sidebar").click()`);
      const listed = await page.evaluate(`(() => {
        const button = document.querySelector('#room-list button[data-key=${js(room)}]');
        const box = button.getBoundingClientRect();
        const count = button.querySelector(".count").getBoundingClientRect();
        return { inside: count.left >= box.left && count.right <= box.right + 0.5,
          visible: count.width > 0, title: button.querySelector(".room-name").title };
      })()`);
      assert.deepEqual(listed, { inside: true, visible: true, title: `#${room}` });
      const opened = await overflow(page);
      assert.equal(opened.scroll, opened.width, `with the sidebar open at ${width} px`);
      await screenshot(page, `${name}-sidebar`);
      await page.evaluate(`document.getElementById("toggle-sidebar").click()`);
    }

    await page.setViewport(1280, 800, false);
    await page.setColorScheme("dark");
    await page.waitFor(`matchMedia("(prefers-color-scheme: dark)").matches`);
    const colors = await page.evaluate(`[getComputedStyle(document.body).backgroundColor,
      getComputedStyle(document.body).color]`);
    assert.deepEqual(colors, ["rgb(21, 23, 27)", "rgb(230, 232, 235)"]);
    await screenshot(page, "dark-1280");
    await page.setViewport(390, 844);
    await screenshot(page, "dark-phone-390");
    assertCleanPage(page);
  },
);

/** Collects the page's CSP violations from the first script on, before the page's own. */
pageTest(
  "the page runs under its Content-Security-Policy without a violation",
  async ({ url, browser, client }) => {
    const page = await browser.newPage();
    await page.addInitScript(CSP_RECORDER);
    await enter(page, `${url}/#lobby`, "alice");
    await untilActiveRoom(page, "lobby");
    const policy = await page.evaluate<string | null>(
      `fetch("/").then((r) => r.headers.get("content-security-policy"))`,
    );
    assert.match(policy ?? "", /default-src 'self'/);

    // Use what the page has: send, links, mentions, rooms, older messages, members, the sidebar,
    // the dark theme, a phone screen, a reload, logging out and in again.
    const bob = await client.session("bob");
    await client.join(bob.token, "lobby");
    await client.send(bob.token, "lobby", "hi alice, see https://example.com/x");
    await submit(page, "hello <b>bob</b> javascript:void(0)");
    await untilShown(page, "hello <b>bob</b> javascript:void(0)");
    await joinRoom(page, "dev");
    await page.evaluate(`document.querySelector('#room-tabs button[data-room="lobby"]').click()`);
    await untilShown(page, "hi alice, see https://example.com/x");
    await page.setColorScheme("dark");
    await page.setViewport(390, 844);
    await page.evaluate(`document.getElementById("toggle-sidebar").click()`);
    await page.evaluate(`(() => {
      const input = document.getElementById("send-input");
      input.value = "x".repeat(1900);
      input.dispatchEvent(new Event("input"));
    })()`);
    await page.waitFor(`!document.getElementById("send-count").hidden`);
    await page.reload();
    await untilActiveRoom(page, "lobby");
    await untilShown(page, "hi alice, see https://example.com/x");
    await page.evaluate(`document.getElementById("logout").click()`);
    await logIn(page, "alice");
    await untilActiveRoom(page, "lobby");

    assert.deepEqual(await page.evaluate(`window.__violations`), []);
    const cspErrors = page.console.filter((line) => /Content Security Policy/i.test(line));
    assert.deepEqual(cspErrors, []);

    // The recorder works, and the policy is enforced: an inline style is refused and reported.
    await page.evaluate(`(() => {
      const div = document.createElement("div");
      div.setAttribute("style", "color: red");
      document.body.append(div);
      const s = document.createElement("script");
      s.textContent = "window.__inline = true";
      document.body.append(s);
    })()`);
    await page.waitFor(`window.__violations.length >= 2`, { what: "the violations reported" });
    assert.equal(await page.evaluate(`window.__inline ?? false`), false);
    assertCleanPage(page);
  },
);
