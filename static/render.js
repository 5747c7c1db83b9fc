// @ts-check
/// <reference lib="dom" />
// DOM builders. Chat text (messages, nicks, room names) is only ever set with textContent, and
// every piece of it takes its own direction (dir="auto").
import { messageSegments } from "./text.js";

/**
 * @typedef {{id: number, type: string, room: string, nick: string, text?: string, ts: number,
 *   clientId?: string}} ChatEvent
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
 * One event of the message list.
 * @param {ChatEvent} ev @param {{own: boolean, nick: string}} me whether this session sent it,
 *   and the reader's nick (for mentions)
 */
export function eventLi(ev, me) {
  const li = document.createElement("li");
  li.dataset.id = String(ev.id);
  if (ev.type === "message") {
    const text = richText(ev.text ?? "", me.own ? "" : me.nick);
    li.className = me.own ? "message own" : "message";
    if (text.querySelector("mark")) li.classList.add("mentioned");
    li.append(timeEl(ev.ts), name("nick", ev.nick), text);
  } else {
    li.className = "system";
    const text = span("text", "");
    text.append(name("nick", ev.nick), ev.type === "join" ? " joined" : " left");
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
