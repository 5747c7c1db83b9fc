// @ts-check
// Pure helpers of the page: names, lengths, links and mentions. No DOM, no storage, so the same
// rules can be unit-tested outside a browser.

/** Characters (code points) in a message, as the server's `--max-message` default counts them. */
export const MAX_MESSAGE = 2000;
/** From this many characters on, the composer shows a counter. */
export const COUNT_FROM = 1800;

/** Room names: a letter or digit, then up to 63 letters, marks, digits, `_`, `.` or `-`. */
const ROOM = /^[\p{L}\p{N}][\p{L}\p{M}\p{N}_.-]{0,63}$/u;

/**
 * A room name as typed or taken from the URL fragment, in the form the page uses: NFC, without
 * surrounding space and a leading `#`.
 * @param {string} text
 */
export function normalizeRoom(text) {
  return text.trim().replace(/^#/, "").normalize("NFC");
}

/**
 * Why `name` is not a room name, or null when it is one. Names are checked before they go into a
 * path, so `..` or `a/b` never reach the server as path segments.
 * @param {string} name
 */
export function roomProblem(name) {
  if (name === "") return "A room name cannot be empty.";
  if (!ROOM.test(name)) {
    return "A room name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit.";
  }
  return null;
}

/** Direct-message rooms: `@` and 16 lowercase hex characters (DESIGN.md). */
const DIRECT_ROOM = /^@[0-9a-f]{16}$/;

/** True for the name of a direct-message room (the private room of two sessions). @param {string} name */
export function isDirectRoom(name) {
  return DIRECT_ROOM.test(name);
}

/**
 * The API path of a room (a direct-message room too), or of something in it; throws TypeError
 * for a name that is neither.
 * @param {string} name @param {string} [rest] e.g. "join", "messages"
 */
export function roomPath(name, rest = "") {
  if (roomProblem(name) && !isDirectRoom(name)) {
    throw new TypeError(`Not a room name: ${JSON.stringify(name)}`);
  }
  return `/api/rooms/${encodeURIComponent(name)}${rest ? `/${rest}` : ""}`;
}

/** @param {string} text characters as the server counts them (code points, not UTF-16 units) */
export function countChars(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** @param {string | null} header a Retry-After value; seconds to wait, 1–60 */
export function retryAfterSeconds(header) {
  return Math.min(60, Math.max(1, Math.ceil(Number(header) || 1)));
}

/** crypto.randomUUID exists only in secure contexts (https, localhost); plain http on a LAN lacks it. */
export function uuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A piece of message text: plain, a link (`href` is an http or https URL) or a mention of the
 * reader's own nick.
 * @typedef {{text: string, href?: string, mention?: boolean}} Segment
 */

/** Candidates for links: from a scheme to the next space or angle bracket or quote. */
const URL_LIKE = /\bhttps?:\/\/[^\s<>"'`]+/giu;
/** Punctuation that ends a sentence more often than a URL. */
const TRAILING = /[.,;:!?'"\]}>»”’]+$/u;

/**
 * Splits text into plain parts and links. Only `http:` and `https:` URLs become links; anything
 * else (`javascript:`, `data:`, …) stays plain text.
 * @param {string} text @returns {Segment[]}
 */
export function linkSegments(text) {
  /** @type {Segment[]} */
  const out = [];
  let last = 0;
  for (const match of text.matchAll(URL_LIKE)) {
    let candidate = match[0];
    // Sentence punctuation after a URL is not part of it, but a closing parenthesis that closes
    // one inside the URL is (Wikipedia links).
    for (let before = ""; before !== candidate;) {
      before = candidate;
      candidate = candidate.replace(TRAILING, "");
      if (candidate.endsWith(")") && count(candidate, "(") < count(candidate, ")")) {
        candidate = candidate.slice(0, -1);
      }
    }
    const start = match.index ?? 0;
    const href = safeHref(candidate);
    if (!href) continue;
    if (start > last) out.push({ text: text.slice(last, start) });
    out.push({ text: candidate, href });
    last = start + candidate.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** @param {string} s @param {string} c */
function count(s, c) {
  return s.split(c).length - 1;
}

/** The URL as a link target when it is http or https with a host, else null. @param {string} s */
export function safeHref(s) {
  try {
    const url = new URL(s);
    if ((url.protocol === "http:" || url.protocol === "https:") && url.hostname) return url.href;
  } catch { /* not a URL */ }
  return null;
}

/**
 * Marks where `nick` is mentioned in plain text: as a whole word, ignoring case, with or without
 * a leading `@`.
 * @param {string} text @param {string} nick @returns {Segment[]}
 */
export function mentionSegments(text, nick) {
  if (!nick) return [{ text }];
  const escaped = nick.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  const word = new RegExp(`(?<![\\p{L}\\p{M}\\p{N}_])@?${escaped}(?![\\p{L}\\p{M}\\p{N}_])`, "giu");
  /** @type {Segment[]} */
  const out = [];
  let last = 0;
  for (const match of text.matchAll(word)) {
    const start = match.index ?? 0;
    if (start > last) out.push({ text: text.slice(last, start) });
    out.push({ text: match[0], mention: true });
    last = start + match[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out.length > 0 ? out : [{ text }];
}

/**
 * Message text as segments: links first, then mentions of `nick` in the plain parts (pass "" to
 * mark none, e.g. in one's own messages).
 * @param {string} text @param {string} nick @returns {Segment[]}
 */
export function messageSegments(text, nick) {
  return linkSegments(text).flatMap((s) => (s.href ? [s] : mentionSegments(s.text, nick)));
}

/** Shortens `text` to `max` characters with an ellipsis (for placeholders). @param {string} text @param {number} max */
export function shorten(text, max) {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}
