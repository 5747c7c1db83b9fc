// @ts-check
/// <reference lib="dom" />
// What the page keeps in the browser. localStorage is shared by every tab of the browser (the
// session, its rooms, the cursor, the unsent messages, the clientIds sent); sessionStorage belongs
// to one tab and survives its reloads (its id, its unread counts).

import { isDirectRoom, roomProblem } from "./text.js";

/** Storage keys. */
export const KEY = {
  token: "parley.token",
  nick: "parley.nick",
  cursor: "parley.cursor",
  /** Joined rooms in tab order; absent after a logout, kept when a session expires. */
  rooms: "parley.rooms",
  /** Unsent messages of every tab, oldest first. */
  outbox: "parley.outbox",
  /** The clientIds the current session sent: `{token, ids}`. */
  sent: "parley.sent",
  /** The session's direct conversations: `{token, dms: [{room, with}]}`, oldest first. */
  dms: "parley.dms",
  /** The token of the current session when it is a moderator's. */
  moderator: "parley.moderator",
  /** Per tab (sessionStorage): its id, and unread counts by room. */
  tab: "parley.tab",
  unread: "parley.unread",
};

/** Unsent messages kept at most; more are refused with a notice. */
export const OUTBOX_MAX = 200;
/** clientIds remembered per session. */
const SENT_MAX = 1000;

/** A storage that tolerates being unavailable (then nothing survives a reload). @param {() => Storage} which */
function wrap(which) {
  return {
    /** @param {string} key */
    get(key) {
      try {
        return which().getItem(key);
      } catch {
        return null;
      }
    },
    /** @param {string} key @param {string | null} value null removes */
    set(key, value) {
      try {
        if (value === null) which().removeItem(key);
        else which().setItem(key, value);
      } catch { /* unavailable or full */ }
    },
    /** @template T @param {string} key @param {T} fallback @returns {T} */
    json(key, fallback) {
      try {
        const value = JSON.parse(this.get(key) ?? "null");
        return value ?? fallback;
      } catch {
        return fallback;
      }
    },
    /** @param {string} key @param {unknown} value */
    setJson(key, value) {
      this.set(key, JSON.stringify(value));
    },
  };
}

export const local = wrap(() => localStorage);
export const perTab = wrap(() => sessionStorage);

/** @returns {string[]} the joined rooms, in tab order (names that are not rooms are skipped) */
export function savedRooms() {
  const rooms = local.json(KEY.rooms, /** @type {unknown[]} */ ([]));
  if (!Array.isArray(rooms)) return [];
  return rooms.filter(
    /** @returns {r is string} */ (r) => typeof r === "string" && roomProblem(r) === null,
  );
}

/** Adds a room to the shared list (read, modify, write: other tabs may have changed it). @param {string} name */
export function addSavedRoom(name) {
  const rooms = savedRooms();
  if (!rooms.includes(name)) local.setJson(KEY.rooms, [...rooms, name]);
}

/** @param {string} name */
export function removeSavedRoom(name) {
  const rooms = savedRooms();
  if (rooms.includes(name)) local.setJson(KEY.rooms, rooms.filter((r) => r !== name));
}

/**
 * A direct conversation: its room (`@` + hex) and the other person's nick, the only name shown.
 * @typedef {{room: string, with: string}} SavedDm
 */

/**
 * The direct conversations of the session of `token`. They belong to that session (DESIGN.md),
 * so those of an earlier session are never listed.
 * @param {string | null} token @returns {SavedDm[]}
 */
export function savedDms(token) {
  const saved = local.json(KEY.dms, /** @type {{token?: unknown, dms?: unknown}} */ ({}));
  if (!token || saved.token !== token || !Array.isArray(saved.dms)) return [];
  return saved.dms.filter(
    /** @returns {d is SavedDm} */ (d) =>
      d && typeof d.room === "string" && isDirectRoom(d.room) && typeof d.with === "string",
  );
}

/** Adds or relabels a direct conversation (read, modify, write). @param {string} token @param {SavedDm} dm */
export function addSavedDm(token, dm) {
  const dms = savedDms(token);
  const at = dms.findIndex((d) => d.room === dm.room);
  if (at >= 0 && dms[at]?.with === dm.with) return;
  if (at >= 0) dms[at] = dm;
  else dms.push(dm);
  local.setJson(KEY.dms, { token, dms });
}

/** @param {string} token @param {string} room */
export function removeSavedDm(token, room) {
  const dms = savedDms(token);
  if (dms.some((d) => d.room === room)) {
    local.setJson(KEY.dms, { token, dms: dms.filter((d) => d.room !== room) });
  }
}

/**
 * An unsent message. `tab` is the tab that sends it; `note` says how sending goes.
 * @typedef {{clientId: string, room: string, text: string, tab: string, note?: string,
 *   problem?: boolean}} OutboxItem
 */

/** @returns {OutboxItem[]} */
export function outbox() {
  const items = local.json(KEY.outbox, /** @type {any[]} */ ([]));
  if (!Array.isArray(items)) return [];
  return items.filter((i) =>
    i && typeof i.clientId === "string" && typeof i.room === "string" &&
    typeof i.text === "string" && typeof i.tab === "string"
  );
}

/** Changes the outbox: `fn` gets the current items and returns the new ones. @param {(items: OutboxItem[]) => OutboxItem[]} fn */
export function updateOutbox(fn) {
  const items = fn(outbox());
  if (items.length === 0) local.set(KEY.outbox, null);
  else local.setJson(KEY.outbox, items);
}

/** @param {string} token @returns {Set<string>} the clientIds this session sent */
export function sentIds(token) {
  const sent = local.json(KEY.sent, /** @type {{token?: string, ids?: string[]}} */ ({}));
  return new Set(sent.token === token && Array.isArray(sent.ids) ? sent.ids : []);
}

/** Remembers that this session sends `clientId` (before sending: its echo may come first). @param {string} token @param {string} clientId */
export function rememberSent(token, clientId) {
  const ids = sentIds(token);
  if (ids.has(clientId)) return;
  local.setJson(KEY.sent, { token, ids: [...ids, clientId].slice(-SENT_MAX) });
}

/** This tab's id: kept over reloads of the tab, new in every other tab. */
export function tabId() {
  let id = perTab.get(KEY.tab);
  if (!id) {
    id = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    perTab.set(KEY.tab, id);
  }
  return id;
}

/** @returns {Record<string, number>} unread counts of this tab by room */
export function savedUnread() {
  const unread = perTab.json(KEY.unread, /** @type {Record<string, number>} */ ({}));
  return typeof unread === "object" ? unread : {};
}
