// @ts-check
/// <reference lib="dom" />
// DOM builders. Chat text (messages, nicks, room names) is only ever set with textContent, and
// every piece of it takes its own direction (dir="auto").
import { actionText } from "./commands.js";
import { messageSegments } from "./text.js";

/**
 * An event as the server sends it; `editId` is the page's own note of the last edit applied.
 * @typedef {{id: number, type: string, room: string, nick: string, text?: string, ts: number,
 *   clientId?: string, ref?: number, by?: string, reason?: string, edited?: boolean,
 *   deleted?: boolean, editId?: number}} ChatEvent
 */

/** @param {string} className @param {string} text */
export function span(className, text) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  return s;
}

/** Chat text in its own direction, with its full form as the tooltip (names may be cut). @param {string} className @param {string} text */
export function name(className, text) {
  const s = span(className, text);
  s.dir = "auto";
  s.title = text;
  return s;
}

/** @param {string} text @param {() => void} onClick */
export function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

/**
 * Message text with http(s) links made clickable and mentions of `nick` marked.
 * @param {string} text @param {string} nick "" to mark no mentions
 */
export function richText(text, nick) {
  const out = document.createElement("span");
  out.className = "text";
  out.dir = "auto";
  for (const segment of messageSegments(text, nick)) {
    if (segment.href) {
      const a = document.createElement("a");
      a.href = segment.href;
      a.textContent = segment.text;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.referrerPolicy = "no-referrer";
      out.append(a);
    } else if (segment.mention) {
      const mark = document.createElement("mark");
      mark.className = "mention";
      mark.textContent = segment.text;
      out.append(mark);
    } else out.append(segment.text);
  }
  return out;
}

/** @param {number} ts */
function timeEl(ts) {
  const date = new Date(Number.isFinite(ts) ? ts : Date.now());
  const time = document.createElement("time");
  time.dateTime = date.toISOString();
  time.title = date.toLocaleString();
  time.textContent = `${String(date.getHours()).padStart(2, "0")}:${
    String(date.getMinutes()).padStart(2, "0")
  }`;
  return time;
}

/**
 * What the reader may do with a message: whether this session sent it, the reader's nick (for
 * mentions), and which controls it gets. Controls carry `data-action` (the list handles clicks).
 * @typedef {{own: boolean, nick: string, canEdit?: boolean, canDelete?: boolean,
 *   canDm?: boolean}} Viewer
 */

/** @param {string} action @param {string} text @param {string} label */
function actionButton(action, text, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.action = action;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  return b;
}

/**
 * A nick that opens a direct conversation when chosen. In the message list it is out of the Tab
 * order (one stop per message would be too many; the member list and `/msg` do the same).
 * @param {string} nick @param {string} className
 */
export function nickButton(nick, className = "nick") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.dataset.action = "dm";
  b.dir = "auto";
  b.textContent = nick;
  b.title = `Direct message with ${nick}`;
  return b;
}

/**
 * One event of the message list: a message (deleted ones without their text, edited ones marked,
 * `/me` ones as actions), or a line about a join, a leave (a removal names who removed) or a
 * topic.
 * @param {ChatEvent} ev @param {Viewer} me
 */
export function eventLi(ev, me) {
  const li = document.createElement("li");
  li.dataset.id = String(ev.id);
  if (ev.type === "message") {
    li.className = me.own ? "message own" : "message";
    const body = span("body", "");
    if (ev.deleted) {
      li.classList.add("deleted");
      body.append(span("text", "message deleted"));
    } else {
      const action = actionText(ev.text ?? "");
      const text = richText(action ?? ev.text ?? "", me.own ? "" : me.nick);
      if (action !== null) li.classList.add("action");
      if (text.querySelector("mark")) li.classList.add("mentioned");
      body.append(text);
      if (ev.edited) body.append(span("edited", "(edited)"));
    }
    const nick = me.canDm ? nickButton(ev.nick) : name("nick", ev.nick);
    if (me.canDm) nick.tabIndex = -1;
    li.append(timeEl(ev.ts), nick, body);
    const controls = [];
    if (!ev.deleted && me.canEdit) {
      controls.push(actionButton("edit", "Edit", "Edit your message"));
    }
    if (!ev.deleted && me.canDelete) {
      const whose = me.own ? "your message" : `the message of ${ev.nick}`;
      controls.push(actionButton("delete", "Delete", `Delete ${whose}`));
    }
    if (controls.length > 0) {
      const box = span("actions", "");
      box.append(...controls);
      li.append(box);
    }
  } else {
    li.className = "system";
    const text = span("text", "");
    text.append(name("nick", ev.nick));
    if (ev.type === "join") text.append(" joined");
    else if (ev.type === "leave" && ev.by) {
      text.append(" was removed by ", name("nick", ev.by));
      if (ev.reason) text.append(": ", name("reason", ev.reason));
    } else if (ev.type === "leave") text.append(" left");
    else if (ev.type === "topic" && ev.text) {
      text.append(" set the topic: ", name("topic-text", ev.text));
    } else if (ev.type === "topic") text.append(" cleared the topic");
    li.append(timeEl(ev.ts), text);
  }
  return li;
}

/**
 * A message not sent yet, with how sending goes and a Discard button.
 * @param {{clientId: string, text: string, note?: string, problem?: boolean}} item
 * @param {string} nick @param {() => void} onDiscard
 */
export function pendingLi(item, nick, onDiscard) {
  const li = document.createElement("li");
  li.className = item.problem ? "message own pending failed" : "message own pending";
  li.dataset.clientId = item.clientId;
  const text = span("text", item.text);
  text.dir = "auto";
  const discard = button("Discard", onDiscard);
  discard.className = "discard";
  discard.setAttribute("aria-label", "Discard this unsent message");
  li.append(name("nick", nick), text, span("state", item.note ?? "sending…"), discard);
  return li;
}
