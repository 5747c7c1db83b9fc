// @ts-check
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
// Parley's page: a nick form, joined rooms as tabs, and ONE long poll per browser, held by the
// leading tab and shared with the others (./tabs.js). Plain ES modules, no build step. Chat text
// is only ever set with textContent (./render.js).
import { button, eventLi, name, pendingLi, span } from "./render.js";
import {
  addSavedRoom,
  KEY,
  local,
  outbox,
  OUTBOX_MAX,
  perTab,
  rememberSent,
  removeSavedRoom,
  savedRooms,
  savedUnread,
  sentIds,
  tabId,
  updateOutbox,
} from "./storage.js";
import { holdTabLock, liveTabs, openChannel, whileLeading } from "./tabs.js";
import {
  COUNT_FROM,
  countChars,
  MAX_MESSAGE,
  normalizeRoom,
  retryAfterSeconds,
  roomPath,
  roomProblem,
  shorten,
  uuid,
} from "./text.js";

/**
 * @typedef {import("./render.js").ChatEvent} ChatEvent
 * @typedef {import("./storage.js").OutboxItem} OutboxItem
 * @typedef {{name: string, events: ChatEvent[], ids: Set<number>, members: Set<string>,
 *   memberCount: number, membersNext: string | null, unread: number, noMore: boolean,
 *   loaded: boolean, loading: Promise<void> | null, draft: string}} Room
 * @typedef {{status: number, ok: boolean, data: any, headers: Headers}} Reply
 */

const WAIT = 25; // seconds a poll may wait on the server
const PAGE = 50; // events per join answer and per "load older"
const MEMBERS_PAGE = 100; // nicks per "more members"
const EVENTS_KEPT = 1000; // events kept per room in memory; older ones come back on demand
const JOINS_AT_ONCE = 4; // rejoins after a new session, so sends and the poll still get through
/** Event types this page shows; others (from newer servers) are skipped. */
const SHOWN = new Set(["message", "join", "leave"]);

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const nickForm = /** @type {HTMLFormElement} */ ($("nick-form"));
const nickInput = /** @type {HTMLInputElement} */ ($("nick-input"));
const joinForm = /** @type {HTMLFormElement} */ ($("join-form"));
const joinInput = /** @type {HTMLInputElement} */ ($("join-input"));
const sendForm = /** @type {HTMLFormElement} */ ($("send-form"));
const sendInput = /** @type {HTMLTextAreaElement} */ ($("send-input"));
const older = /** @type {HTMLButtonElement} */ ($("load-older"));
const moreMembers = /** @type {HTMLButtonElement} */ ($("members-more"));
const sendCount = $("send-count");
const joinError = $("join-error");
const nickError = $("nick-error");
const loginNote = $("login-note");
const status = $("status");
const me = $("me");
const logout = $("logout");
const tabs = $("room-tabs");
const list = $("messages");
const members = $("members");
const roomList = $("room-list");
const scroller = $("scroller");
const leave = $("leave");
const toggle = $("toggle-sidebar");
const sidebar = $("sidebar");
const notice = $("notice");
const roomTitle = $("room-title");

/** This tab's id; a lock held under it tells other tabs it is alive. */
const tab = tabId();
holdTabLock(tab);
const channel = openChannel(receive);

const state = {
  /** @type {string | null} */ token: local.get(KEY.token),
  nick: local.get(KEY.nick) ?? "",
  /** @type {string | null} */ active: null,
  /** Aborted when the session ends here: stops the poll, the queues, every request in flight. */
  /** @type {AbortController | null} */ ctl: null,
  /** clientIds this session sent (a copy of storage; see rememberSent). */
  /** @type {Set<string>} */ sent: new Set(),
  /** Every room on the server with its member count: one GET per session start. */
  /** @type {Map<string, number>} */ listing: new Map(),
  /** Rooms this session has not joined yet (after a new session: every saved room). */
  /** @type {Set<string>} */ needsJoin: new Set(),
  /** The send queue of each room, at most one per room in this tab. */
  /** @type {Map<string, Promise<void>>} */ queues: new Map(),
};
/** Joined rooms in tab order. @type {Map<string, Room>} */
const rooms = new Map();

/** Wakes queues waiting out a failed send (the connection is back). @type {Set<() => void>} */
const wakers = new Set();
function wakeQueues() {
  for (const wake of [...wakers]) wake();
}

/**
 * Waits `ms`, or less when the session ends or the connection comes back (`wakeable`).
 * @param {number} ms @param {AbortSignal} signal @param {boolean} [wakeable]
 */
function pause(ms, signal, wakeable = false) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      wakers.delete(done);
      signal.removeEventListener("abort", done);
      resolve(undefined);
    };
    const timer = setTimeout(done, ms);
    if (wakeable) wakers.add(done);
    signal.addEventListener("abort", done);
  });
}

/** The reply to a request whose session has ended: it never settles, so its caller just stops. */
const never = () => /** @type {Promise<never>} */ (new Promise(() => {}));
/** @param {Reply} r @param {string} fallback */
const errorText = (r, fallback) => r.data?.error?.message ?? fallback;
/** @param {Reply} r */
const retryAfter = (r) => retryAfterSeconds(r.headers.get("Retry-After"));

/**
 * Calls the API with the session's token. A 401 ends the session; requests of an ended session
 * never settle. Throws on network errors and timeouts.
 * @param {string} method @param {string} path
 * @param {{body?: unknown, timeout?: number}} [options]
 * @returns {Promise<Reply>}
 */
async function api(method, path, { body, timeout = 20_000 } = {}) {
  const session = state.ctl;
  const token = state.token;
  const req = new AbortController();
  const abort = () => req.abort();
  session?.signal.addEventListener("abort", abort);
  const timer = setTimeout(abort, timeout);
  /** @type {Record<string, string>} */
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: req.signal,
      cache: "no-store",
    });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (res.status === 401 && session && session === state.ctl) sessionEnded();
    if (session?.signal.aborted) return never();
    return { status: res.status, ok: res.ok, data, headers: res.headers };
  } catch (err) {
    if (session?.signal.aborted) return never();
    throw err;
  } finally {
    clearTimeout(timer);
    session?.signal.removeEventListener("abort", abort);
  }
}

// ---- session ---------------------------------------------------------------------------------

/**
 * Shows the chat for the session in `state.token`. `fresh`: this tab just created the session, so
 * it (re)joins every saved room; otherwise the session goes on and only the shown room is loaded.
 * @param {boolean} fresh
 */
function startSession(fresh) {
  state.ctl?.abort();
  const ctl = state.ctl = new AbortController();
  const token = /** @type {string} */ (state.token);
  state.sent = sentIds(token);
  state.queues = new Map();
  state.listing = new Map();
  nickError.textContent = loginNote.textContent = joinError.textContent = "";
  setNotice("");
  $("login").hidden = true;
  $("chat").hidden =
    logout.hidden =
    me.hidden =
    $("skip-links").hidden =
      false;
  $("me-nick").textContent = state.nick;

  const { room: wanted, problem } = roomFromHash();
  saveWantedRoom(wanted);
  const names = savedRooms();
  const unread = savedUnread();
  rooms.clear();
  for (const n of names) rooms.set(n, newRoom(n, unread[n] ?? 0));
  state.needsJoin = new Set(fresh ? names : []);
  state.active = null;
  showRoom(wanted ?? names[0] ?? null);
  if (problem) setNotice(problem);

  whileLeading(token, ctl.signal, () => leadPolls(ctl.signal));
  void loadListing();
  if (fresh) void joinAll(names, ctl.signal);
  kickQueues();
  if (document.activeElement === document.body || document.activeElement === nickInput) {
    sendInput.focus();
  }
}

/** Adds the room of the address, or lobby when there is none at all, to the saved rooms. @param {string | null} wanted */
function saveWantedRoom(wanted) {
  if (wanted) addSavedRoom(wanted);
  else if (savedRooms().length === 0) addSavedRoom("lobby");
}

/** @param {string} n @param {number} unread */
function newRoom(n, unread = 0) {
  return {
    name: n,
    events: [],
    ids: new Set(),
    members: new Set(),
    memberCount: 0,
    membersNext: null,
    unread,
    noMore: false,
    loaded: false,
    loading: null,
    draft: "",
  };
}

/**
 * Shows the nick form. The saved rooms and unsent messages stay (a logout removed them before), so
 * logging in again continues where the person was.
 * @param {string} note shown above the nick form
 */
function endSession(note) {
  state.ctl?.abort();
  state.ctl = null;
  state.token = state.active = null;
  rooms.clear();
  list.replaceChildren();
  roomList.replaceChildren();
  status.textContent = "";
  setNotice("");
  loginNote.textContent = note;
  $("chat").hidden =
    logout.hidden =
    me.hidden =
    $("skip-links").hidden =
      true;
  $("login").hidden = false;
  document.title = "Parley";
  nickInput.value = state.nick;
  if (!document.hidden) nickInput.focus();
}

/** The server no longer knows the session (it expired, or was ended elsewhere). */
function sessionEnded() {
  const mine = state.token;
  const current = local.get(KEY.token);
  if (current && current !== mine) return followSession(current); // another tab logged in
  if (current === mine) local.set(KEY.token, null);
  endSession("Your session has ended. Choose a nick to continue.");
}

/** Another tab started a session: this one goes on with it. @param {string} token */
function followSession(token) {
  state.token = token;
  state.nick = local.get(KEY.nick) ?? state.nick;
  startSession(false);
}

/** @param {string} message */
function showNickError(message) {
  nickError.textContent = message;
  nickInput.setAttribute("aria-invalid", String(Boolean(message)));
  if (message) nickInput.focus();
}

nickForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const nick = nickInput.value.trim().normalize("NFC");
  if (!nick) return showNickError("Please choose a nick.");
  const submit = /** @type {HTMLButtonElement} */ (nickForm.querySelector("button"));
  submit.disabled = true;
  try {
    await loggingOut;
    const r = await api("POST", "/api/session", { body: { nick } });
    if (r.ok && r.data?.token) {
      showNickError("");
      state.token = r.data.token;
      state.nick = r.data.nick ?? nick;
      // The token last: other tabs follow when it changes, and need the rest by then.
      local.setJson(KEY.cursor, { token: state.token, cursor: r.data.cursor ?? "" });
      local.set(KEY.nick, state.nick);
      saveWantedRoom(roomFromHash().room);
      local.set(KEY.token, state.token);
      startSession(true);
    } else if (r.status === 429) {
      showNickError(`${errorText(r, "Too many new sessions.")} Try again in ${retryAfter(r)} s.`);
    } else {
      showNickError(errorText(r, `Could not start a session (HTTP ${r.status}).`));
    }
  } catch {
    showNickError("Cannot reach the server. Please try again.");
  } finally {
    submit.disabled = false;
  }
});

/** The DELETE of the last session: a new one waits for it, so the same nick is free again. */
let loggingOut = Promise.resolve();

logout.addEventListener("click", () => {
  const token = state.token;
  // Everything of the person goes; the rooms first (other tabs take that for a logout, not an
  // expiry), the token last.
  for (const key of [KEY.rooms, KEY.outbox, KEY.sent, KEY.cursor]) local.set(key, null);
  perTab.set(KEY.unread, null);
  local.set(KEY.token, null);
  endSession(""); // stops the poll first, so its 401 is not taken for an expiry
  loggingOut = fetch("/api/session", {
    method: "DELETE",
    headers: { Authorization: `Bearer ${token}` },
    keepalive: true,
    signal: AbortSignal.timeout(5000),
  }).then(() => {}, () => {});
});

// Other tabs of this browser changed what is shared.
addEventListener("storage", (e) => {
  if (e.storageArea !== localStorage) return;
  if (e.key === null || e.key === KEY.token) {
    const token = local.get(KEY.token);
    if (token === state.token) return;
    if (token) followSession(token);
    else if (state.ctl) {
      const loggedOut = local.get(KEY.rooms) === null;
      if (loggedOut) perTab.set(KEY.unread, null);
      endSession(
        loggedOut ? "You logged out." : "Your session has ended. Choose a nick to continue.",
      );
    }
  } else if (!state.ctl) {
    // not signed in: nothing shown depends on the rest
  } else if (e.key === KEY.rooms) syncRooms();
  else if (e.key === KEY.outbox) {
    renderPending();
    kickQueues();
  } else if (e.key === KEY.sent) state.sent = sentIds(/** @type {string} */ (state.token));
});

// ---- the long poll, held by the leading tab --------------------------------------------------

/**
 * What the leading tab shares, and tabs tell each other.
 * @param {{kind: string, token?: string | null, events?: ChatEvent[], gap?: boolean,
 *   text?: string}} message
 */
function receive(message) {
  if (!message || message.token !== state.token || !state.ctl) return;
  if (message.kind === "events") applyEvents(message.events ?? [], Boolean(message.gap));
  else if (message.kind === "status") status.textContent = message.text ?? "";
  else if (message.kind === "online") {
    wakeQueues();
    const active = state.active ? rooms.get(state.active) : undefined;
    if (active && !active.loaded) void loadRoom(active);
  }
}

/** Tells this tab and the others. @param {{kind: string, [k: string]: unknown}} message */
function share(message) {
  const full = { ...message, token: state.token };
  channel.post(full);
  receive(full);
}

/** The poll position of the session, shared by the tabs. */
function savedCursor() {
  const saved = local.json(KEY.cursor, /** @type {{token?: string, cursor?: string}} */ ({}));
  return saved.token === state.token && typeof saved.cursor === "string" ? saved.cursor : "";
}

/**
 * The leading tab's loop: polls from the shared cursor and shares each answer. Settles when the
 * session ends here, which releases the lock for the next tab.
 * @param {AbortSignal} signal the session's
 */
function leadPolls(signal) {
  const ended = new Promise((resolve) => signal.addEventListener("abort", resolve));
  return Promise.race([ended, pollLoop(signal)]).then(() => {});
}

/** @param {AbortSignal} signal */
async function pollLoop(signal) {
  const token = state.token;
  void adoptOrphans();
  const adopter = setInterval(() => void adoptOrphans(), 5000);
  signal.addEventListener("abort", () => clearInterval(adopter));
  let delay = 1000; // backoff after errors: 1, 2, 4 … 15 s
  let busy = 0; // consecutive 503s, retried promptly a few times
  let failing = false;
  while (!signal.aborted) {
    let wait = 0;
    const cursor = savedCursor();
    try {
      const query = new URLSearchParams({ wait: String(WAIT) });
      if (cursor) query.set("cursor", cursor);
      const r = await api("GET", `/api/events?${query}`, { timeout: (WAIT + 15) * 1000 });
      if (signal.aborted || token !== state.token) return;
      if (r.ok) {
        if (failing) share({ kind: "online" });
        if (failing || status.textContent) share({ kind: "status", text: "" });
        failing = false;
        delay = 1000;
        busy = 0;
        share({ kind: "events", events: r.data?.events ?? [], gap: Boolean(r.data?.gap) });
        if (r.data?.cursor) local.setJson(KEY.cursor, { token, cursor: r.data.cursor });
        continue; // also on `Connection: close` (server shutting down): reconnect at once
      }
      if (r.status === 400 && cursor) {
        // invalid_cursor: start at the present and reload what is shown
        local.setJson(KEY.cursor, { token, cursor: "" });
        share({ kind: "events", events: [], gap: true });
        continue;
      }
      if (r.status !== 503 || ++busy > 3) throw new Error(`HTTP ${r.status}`);
      wait = 200 + Math.random() * 500;
    } catch {
      wait = delay;
      delay = Math.min(delay * 2, 15_000);
      failing = true;
      share({ kind: "status", text: `Reconnecting… (retry in ${Math.round(wait / 1000)} s)` });
    }
    await pause(wait, signal);
  }
}

/** @param {ChatEvent[]} events in order @param {boolean} gap events were lost: reload */
function applyEvents(events, gap) {
  if (gap) {
    for (const room of rooms.values()) {
      Object.assign(room, { events: [], ids: new Set(), loaded: false, noMore: false });
    }
  }
  if (events.length > 0) state.sent = sentIds(/** @type {string} */ (state.token));
  const delivered = new Set(events.map((ev) => ev.clientId).filter(Boolean));
  if (delivered.size > 0 && outbox().some((i) => delivered.has(i.clientId))) {
    // Accepted, though its sender did not hear so (a closed tab): never send it again.
    updateOutbox((items) => items.filter((i) => !delivered.has(i.clientId)));
    renderPending();
  }
  for (const ev of events) applyEvent(ev);
  if (gap) {
    renderMessages();
    const active = state.active ? rooms.get(state.active) : undefined;
    if (active) void loadRoom(active);
  }
}

/** @param {ChatEvent} ev an event from the poll */
function applyEvent(ev) {
  const room = rooms.get(ev.room);
  if (!room) {
    if (ev.type === "join") bumpListing(ev.room, 1);
    else if (ev.type === "leave") bumpListing(ev.room, -1);
    return;
  }
  if (!addEvent(room, ev, true)) return;
  if (ev.type === "message") {
    if (!isOwn(ev) && (room.name !== state.active || document.hidden)) {
      room.unread++;
      saveUnread();
      renderTabs();
    }
  } else applyPresence(room, ev);
}

/** @param {ChatEvent} ev */
function isOwn(ev) {
  return Boolean(ev.clientId && state.sent.has(ev.clientId));
}

/**
 * Follows a join or leave in a room's members and counts. Nicks are a set, so an event seen
 * twice, or one the join answer already counted, changes nothing.
 * @param {Room} room @param {ChatEvent} ev
 */
function applyPresence(room, ev) {
  if (!room.loaded) {
    bumpListing(room.name, ev.type === "join" ? 1 : -1);
    return;
  }
  const complete = room.membersNext === null;
  if (ev.type === "join" && !room.members.has(ev.nick)) {
    room.members.add(ev.nick);
    if (!complete) room.memberCount++;
  } else if (ev.type === "leave") {
    if (room.members.delete(ev.nick) || !complete) room.memberCount--;
  }
  if (complete) room.memberCount = room.members.size;
  room.memberCount = Math.max(room.memberCount, room.members.size);
  state.listing.set(room.name, room.memberCount);
  if (room.name === state.active) renderMembers();
  renderListing();
}

/** @param {string} n @param {number} delta */
function bumpListing(n, delta) {
  const count = state.listing.get(n);
  if (count === undefined) return;
  state.listing.set(n, Math.max(0, count + delta));
  renderListing();
}

/**
 * Adds an event to a room once (dedupe by id), in id order.
 * @param {Room} room @param {ChatEvent} ev @param {boolean} live render it now if shown
 * @returns {boolean} whether it was new
 */
function addEvent(room, ev, live) {
  if (room.ids.has(ev.id)) return false;
  room.ids.add(ev.id);
  if (!SHOWN.has(ev.type)) return false;
  const last = room.events.at(-1);
  room.events.push(ev);
  if (last && last.id > ev.id) room.events.sort((a, b) => a.id - b.id);
  if (room.events.length > EVENTS_KEPT) {
    for (const gone of room.events.splice(0, room.events.length - EVENTS_KEPT)) {
      room.ids.delete(gone.id);
    }
    room.noMore = false;
  }
  if (live && room.name === state.active) {
    insertLi(eventLi(ev, { own: isOwn(ev), nick: state.nick }), isOwn(ev));
  }
  return true;
}

// ---- rooms -----------------------------------------------------------------------------------

/**
 * The room named in the URL fragment; an invalid name gives null and why.
 * @returns {{room: string | null, problem: string | null}}
 */
function roomFromHash() {
  const raw = location.hash.slice(1);
  if (!raw) return { room: null, problem: null };
  let text = raw;
  try {
    text = decodeURIComponent(raw);
  } catch { /* keep as is */ }
  const n = normalizeRoom(text);
  const problem = roomProblem(n);
  if (!problem) return { room: n, problem: null };
  return { room: null, problem: `“${shorten(n, 40)}” in the address is not a room. ${problem}` };
}

/** Joins a room here and in every tab (shared list), and shows it. @param {string} n */
function go(n) {
  if (!rooms.has(n)) {
    rooms.set(n, newRoom(n));
    addSavedRoom(n);
    state.needsJoin.add(n);
  }
  showRoom(n, true, true);
}

/**
 * Joins the room (again: a join of a joined room is harmless) for its members and latest
 * history. One at a time per room.
 * @param {Room} room
 */
function loadRoom(room) {
  room.loading ??= (async () => {
    let r;
    try {
      r = await api("POST", roomPath(room.name, "join"));
    } catch {
      if (room.name === state.active) {
        setNotice(`Could not load #${room.name}: the server is unreachable.`);
      }
      return;
    }
    if (rooms.get(room.name) !== room) return; // left meanwhile
    if (!r.ok) {
      // A room the server will not let in goes; a busy server is asked again later.
      const refused = r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429;
      if (refused) forgetRoom(room.name);
      if (refused || room.name === state.active) {
        setNotice(errorText(r, `Could not join #${room.name} (HTTP ${r.status}).`));
      }
      return;
    }
    state.needsJoin.delete(room.name);
    /** @type {string[]} */
    const nicks = Array.isArray(r.data?.members) ? r.data.members : [];
    room.members = new Set(nicks);
    room.memberCount = Math.max(Number(r.data?.memberCount) || 0, nicks.length);
    room.membersNext = room.memberCount > nicks.length ? nicks.at(-1) ?? null : null;
    /** @type {ChatEvent[]} */
    const history = Array.isArray(r.data?.history) ? r.data.history : [];
    for (const ev of history) addEvent(room, ev, false);
    // Less than a page up to now: everything the server retains is here.
    if (history.length < PAGE) room.noMore = true;
    room.loaded = true;
    state.listing.set(room.name, room.memberCount);
    if (room.name === state.active) showRoom(room.name, false);
    else renderListing();
  })().finally(() => room.loading = null);
  return room.loading;
}

/** Joins what this session has not joined yet, a few at a time, the shown room first. @param {string[]} names @param {AbortSignal} signal */
async function joinAll(names, signal) {
  const queue = [...names].sort((a, b) => Number(b === state.active) - Number(a === state.active));
  const worker = async () => {
    for (let n = queue.shift(); n !== undefined && !signal.aborted; n = queue.shift()) {
      const room = rooms.get(n);
      if (room && state.needsJoin.has(n)) await loadRoom(room);
    }
  };
  await Promise.all(Array.from({ length: JOINS_AT_ONCE }, worker));
}

/** Forgets a room here and in every tab, with its unsent messages. @param {string} n */
function forgetRoom(n) {
  rooms.delete(n);
  removeSavedRoom(n);
  updateOutbox((items) => items.filter((i) => i.room !== n));
  saveUnread();
  if (state.active === n) showRoom(rooms.keys().next().value ?? null);
  else renderTabs();
}

/** Another tab joined or left rooms: show the same ones. */
function syncRooms() {
  if (local.get(KEY.rooms) === null) return; // a logout: its token change follows
  const names = savedRooms();
  const kept = new Map(rooms);
  rooms.clear();
  for (const n of names) rooms.set(n, kept.get(n) ?? newRoom(n));
  if (state.active && !rooms.has(state.active)) {
    setNotice(`You left #${state.active} in another tab.`);
    showRoom(names[0] ?? null);
  } else if (!state.active && names[0]) showRoom(names[0]);
  else {
    renderTabs();
    renderListing();
  }
}

/**
 * Shows a room (loading it if needed); null shows none.
 * @param {string | null} n @param {boolean} [jump] scroll to the newest message
 * @param {boolean} [push] a new history entry (so Back works)
 */
function showRoom(n, jump = true, push = false) {
  const room = n === null ? undefined : rooms.get(n);
  const previous = state.active ? rooms.get(state.active) : undefined;
  if (previous !== room) {
    if (previous) previous.draft = sendInput.value;
    sendInput.value = room?.draft ?? "";
    updateCount();
    setNotice("");
  }
  state.active = room ? room.name : null;
  if (room && !document.hidden && room.unread) {
    room.unread = 0;
    saveUnread();
  }
  roomTitle.textContent = room ? `#${room.name}` : "No room: join one";
  roomTitle.title = room ? `#${room.name}` : "";
  sendInput.placeholder = room ? `Message #${shorten(room.name, 16)}` : "Join a room first";
  sendInput.disabled = leave.hidden = !room;
  const hash = room ? `#${encodeURIComponent(room.name)}` : "";
  if (room && location.hash !== hash) {
    if (push) history.pushState(null, "", hash);
    else history.replaceState(null, "", hash);
  }
  if (!room && location.hash) history.replaceState(null, "", location.pathname + location.search);
  const offset = scroller.scrollHeight - scroller.scrollTop;
  renderTabs();
  renderMessages();
  renderMembers();
  renderListing();
  scroller.scrollTop = jump ? scroller.scrollHeight : scroller.scrollHeight - offset;
  if (room && !room.loaded && !room.loading) void loadRoom(room);
}

// A fragment typed into the address bar, or Back/Forward.
for (const type of ["hashchange", "popstate"]) {
  addEventListener(type, () => {
    if (!state.ctl) return;
    const { room: n, problem } = roomFromHash();
    if (n && n !== state.active) go(n);
    if (problem) {
      setNotice(problem);
      const hash = state.active ? `#${encodeURIComponent(state.active)}` : "";
      history.replaceState(null, "", hash || location.pathname + location.search);
    }
  });
}

joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const n = normalizeRoom(joinInput.value);
  const problem = roomProblem(n);
  joinError.textContent = problem ?? "";
  joinInput.setAttribute("aria-invalid", String(Boolean(problem)));
  if (problem) return joinInput.focus();
  joinInput.value = "";
  go(n);
  sendInput.focus();
});

leave.addEventListener("click", async () => {
  const n = state.active;
  if (!n) return;
  forgetRoom(n);
  (state.active ? sendInput : joinInput).focus();
  try {
    const r = await api("POST", roomPath(n, "leave"));
    if (!r.ok && r.status !== 404) setNotice(errorText(r, `Could not leave #${n}.`));
  } catch {
    setNotice(`Could not reach the server to leave #${n}.`);
  }
  // The count follows this session's own leave event, which the poll delivers.
});

/** Every room on the server: once per session start; joins and leaves keep the counts. */
async function loadListing() {
  let r;
  try {
    r = await api("GET", "/api/rooms");
  } catch {
    return; // the poll's status line already tells about connectivity
  }
  if (!r.ok) return;
  for (const { name: n, members: count } of r.data?.rooms ?? []) {
    const room = rooms.get(n);
    state.listing.set(n, room?.loaded ? room.memberCount : count);
  }
  renderListing();
}

older.addEventListener("click", async () => {
  const room = state.active ? rooms.get(state.active) : undefined;
  const first = room?.events[0];
  if (!room || !first) return;
  older.disabled = true;
  try {
    const r = await api(
      "GET",
      `${roomPath(room.name, "history")}?before=${first.id}&limit=${PAGE}`,
    );
    if (!r.ok) setNotice(errorText(r, "Could not load older messages."));
    else {
      const events = r.data?.events ?? [];
      for (const ev of events) addEvent(room, ev, false);
      if (events.length < PAGE) room.noMore = true;
      if (room.name === state.active) showRoom(room.name, false);
    }
  } catch {
    setNotice("Could not load older messages: the server is unreachable.");
  } finally {
    older.disabled = false;
    if (older.hidden) scroller.focus();
  }
});

moreMembers.addEventListener("click", async () => {
  const room = state.active ? rooms.get(state.active) : undefined;
  if (!room?.membersNext) return;
  moreMembers.disabled = true;
  try {
    const query = new URLSearchParams({ after: room.membersNext, limit: String(MEMBERS_PAGE) });
    const r = await api("GET", `${roomPath(room.name, "members")}?${query}`);
    if (!r.ok) setNotice(errorText(r, "Could not load more members."));
    else {
      for (const nick of r.data?.members ?? []) room.members.add(nick);
      room.membersNext = typeof r.data?.next === "string" ? r.data.next : null;
      room.memberCount = Math.max(room.memberCount, room.members.size);
      if (room.name === state.active) renderMembers();
    }
  } catch {
    setNotice("Could not load more members: the server is unreachable.");
  } finally {
    moreMembers.disabled = false;
    if (moreMembers.hidden) members.lastElementChild?.scrollIntoView({ block: "nearest" });
  }
});

toggle.addEventListener("click", () => {
  const open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", String(open));
  sidebar.classList.toggle("open", open);
});

// Skip links move focus without touching the fragment, which names the room.
for (const link of document.querySelectorAll("a[data-skip]")) {
  link.addEventListener("click", (e) => {
    e.preventDefault();
    const target = document.getElementById(/** @type {HTMLElement} */ (link).dataset.skip ?? "");
    target?.focus();
  });
}

document.addEventListener("visibilitychange", () => {
  const room = state.active ? rooms.get(state.active) : undefined;
  if (!document.hidden && room?.unread) {
    room.unread = 0;
    saveUnread();
    renderTabs();
  }
});

// ---- sending: one queue per room, kept in the browser until the server has it -----------------

sendInput.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendForm.requestSubmit();
  }
});
sendInput.addEventListener("input", updateCount);

function updateCount() {
  const n = countChars(sendInput.value);
  sendCount.hidden = n < COUNT_FROM;
  sendCount.textContent = n > MAX_MESSAGE
    ? `${n} / ${MAX_MESSAGE} characters: ${n - MAX_MESSAGE} too many`
    : `${n} / ${MAX_MESSAGE} characters`;
  sendCount.classList.toggle("over", n > MAX_MESSAGE);
}

sendForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = sendInput.value;
  const n = state.active;
  if (!text.trim() || !n || !state.token) return;
  const length = countChars(text);
  if (length > MAX_MESSAGE) {
    return setNotice(
      `This message has ${length} characters; the limit is ${MAX_MESSAGE}. Shorten it to send it.`,
    );
  }
  if (outbox().length >= OUTBOX_MAX) {
    return setNotice("Too many messages are waiting to be sent. Wait for them, or discard some.");
  }
  sendInput.value = "";
  updateCount();
  setNotice("");
  updateOutbox((items) => [...items, { clientId: uuid(), room: n, text, tab }]);
  renderPending();
  kick(n);
});

/** Starts the queues of this tab's unsent messages. */
function kickQueues() {
  for (const item of outbox()) if (item.tab === tab) kick(item.room);
}

/** Starts the send queue of a room unless it runs. @param {string} n */
function kick(n) {
  if (!state.ctl || state.queues.has(n)) return;
  const queues = state.queues;
  const run = drain(n, state.ctl.signal).finally(() => {
    if (queues.get(n) !== run) return;
    queues.delete(n);
    // Something queued as the loop ended goes now, not with the next message.
    if (queues === state.queues && outbox().some((i) => i.room === n && i.tab === tab)) kick(n);
  });
  queues.set(n, run);
}

/**
 * Sends this tab's unsent messages of a room, oldest first, one at a time: waits out
 * `Retry-After`, retries when the server is unreachable (the clientId makes that safe), and gives
 * a refused message back to the composer.
 * @param {string} n @param {AbortSignal} signal
 */
async function drain(n, signal) {
  let delay = 1000;
  let rejoined = false;
  while (!signal.aborted) {
    const item = outbox().find((i) => i.room === n && i.tab === tab);
    if (!item) return;
    const room = rooms.get(n);
    if (!room) {
      updateOutbox((items) => items.filter((i) => i.room !== n)); // left the room
      continue;
    }
    if (state.needsJoin.has(n)) {
      await loadRoom(room);
      if (signal.aborted || !rooms.has(n)) continue;
      if (state.needsJoin.has(n)) { // could not join yet: like a failed send
        note(
          item,
          `Not sent yet: cannot join #${n}. Trying again in ${Math.round(delay / 1000)} s.`,
        );
        await pause(delay, signal, true);
        delay = Math.min(delay * 2, 8000);
        continue;
      }
    }
    const token = /** @type {string} */ (state.token);
    rememberSent(token, item.clientId);
    state.sent.add(item.clientId);
    let r;
    try {
      r = await api("POST", roomPath(n, "messages"), {
        body: { text: item.text, clientId: item.clientId },
      });
    } catch {
      note(item, `Not sent yet: no connection. Trying again in ${Math.round(delay / 1000)} s.`);
      await pause(delay, signal, true);
      delay = Math.min(delay * 2, 8000);
      continue;
    }
    if (r.ok && r.data?.event) {
      updateOutbox((items) => items.filter((i) => i.clientId !== item.clientId));
      renderPending();
      addEvent(room, r.data.event, true);
      delay = 1000;
      rejoined = false;
    } else if (r.status === 429) {
      const seconds = retryAfter(r);
      note(item, `Sending too fast: waiting ${seconds} s…`);
      await pause(seconds * 1000, signal);
    } else if (r.status === 403 && r.data?.error?.code === "not_member" && !rejoined) {
      rejoined = true; // the membership went with an old session: join again, once
      state.needsJoin.add(n);
    } else if (r.status === 422 || r.status === 413) {
      refuse(item, errorText(r, "The server refused this message."));
    } else if (r.status >= 500 || r.status === 408) {
      note(
        item,
        `Not sent yet: the server is busy. Trying again in ${Math.round(delay / 1000)} s.`,
      );
      await pause(delay, signal, true);
      delay = Math.min(delay * 2, 8000);
    } else {
      // Sending on would change the order: this one waits to be discarded.
      note(item, `Not sent: ${errorText(r, `HTTP ${r.status}`)}`, true);
      return;
    }
  }
}

/** @param {OutboxItem} item @param {string} text @param {boolean} [problem] */
function note(item, text, problem = false) {
  updateOutbox((items) =>
    items.map((i) => (i.clientId === item.clientId ? { ...i, note: text, problem } : i))
  );
  renderPending();
}

/** The server will never take this text: explain, and give it back to write it anew. @param {OutboxItem} item @param {string} reason */
function refuse(item, reason) {
  updateOutbox((items) => items.filter((i) => i.clientId !== item.clientId));
  renderPending();
  const room = rooms.get(item.room);
  const shown = item.room === state.active;
  const current = shown ? sendInput.value : room?.draft ?? "";
  const back = current.trim() ? `${item.text}\n${current}` : item.text;
  if (shown) {
    sendInput.value = back;
    updateCount();
    sendInput.focus();
  } else if (room) room.draft = back;
  const sentence = /[.!?]$/.test(reason) ? reason : `${reason}.`;
  setNotice(
    `Not sent${shown ? "" : ` to #${item.room}`}: ${sentence} The text is back in the composer.`,
  );
}

/** Gives the messages of tabs that closed to this (leading) tab. */
async function adoptOrphans() {
  if (!local.get(KEY.outbox)) return;
  const live = await liveTabs();
  if (!live) return;
  live.add(tab);
  const orphans = outbox().filter((i) => !live.has(i.tab));
  if (orphans.length === 0) return;
  const ids = new Set(orphans.map((i) => i.clientId));
  updateOutbox((items) => items.map((i) => (ids.has(i.clientId) ? { ...i, tab } : i)));
  kickQueues();
}

addEventListener("online", () => {
  wakeQueues();
  if (state.ctl) channel.post({ kind: "online", token: state.token });
});

// ---- rendering -------------------------------------------------------------------------------

/** @param {string} text */
function setNotice(text) {
  notice.textContent = text;
}

function saveUnread() {
  /** @type {Record<string, number>} */
  const unread = {};
  for (const room of rooms.values()) if (room.unread) unread[room.name] = room.unread;
  perTab.setJson(KEY.unread, unread);
  updateTitle();
}

function updateTitle() {
  let total = 0;
  for (const room of rooms.values()) total += room.unread;
  const where = state.active ? `#${state.active} · ` : "";
  document.title = `${total ? `(${total}) ` : ""}${where}Parley`;
}

/**
 * Replaces a container's children, keeping keyboard focus on the element with the same data-key.
 * @param {HTMLElement} box @param {HTMLElement[]} children
 */
function replaceKeepingFocus(box, children) {
  const focused = document.activeElement;
  const key = focused instanceof HTMLElement && box.contains(focused)
    ? focused.dataset.key
    : undefined;
  box.replaceChildren(...children);
  if (key !== undefined) {
    /** @type {HTMLElement | null} */ (box.querySelector(`[data-key="${CSS.escape(key)}"]`))
      ?.focus();
  }
}

/**
 * Makes the buttons in `box` one tab stop: the current one is reachable with Tab, the arrow keys,
 * Home and End move between them.
 * @param {HTMLElement} box @param {string | null} current data-key of the one to reach with Tab
 */
function rove(box, current) {
  const items = /** @type {HTMLElement[]} */ ([...box.querySelectorAll("[data-key]")]);
  const focused = items.find((b) => b === document.activeElement);
  const stop = focused ?? items.find((b) => b.dataset.key === current) ?? items[0];
  for (const b of items) b.tabIndex = b === stop ? 0 : -1;
}

for (const box of [roomList, tabs]) {
  box.addEventListener("keydown", (e) => {
    const items = /** @type {HTMLElement[]} */ ([...box.querySelectorAll("[data-key]")]);
    const at = items.findIndex((b) => b === document.activeElement);
    if (at < 0) return;
    const next = {
      ArrowDown: at + 1,
      ArrowRight: at + 1,
      ArrowUp: at - 1,
      ArrowLeft: at - 1,
      Home: 0,
      End: items.length - 1,
    }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    const target = items[Math.max(0, Math.min(items.length - 1, next))];
    if (!target) return;
    for (const b of items) b.tabIndex = b === target ? 0 : -1;
    target.focus();
  });
}

/** @param {HTMLElement} li @param {boolean} scroll */
function insertLi(li, scroll) {
  const stick = scroll || atBottom();
  const id = Number(li.dataset.id);
  /** @type {Element | null} */
  let next = null;
  if (li.dataset.id !== undefined) {
    for (let n = list.lastElementChild; n instanceof HTMLElement; n = n.previousElementSibling) {
      if (n.dataset.id !== undefined && Number(n.dataset.id) < id) break;
      next = n;
    }
  }
  list.insertBefore(li, next);
  if (stick) scroller.scrollTop = scroller.scrollHeight;
}

function atBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}

function renderMessages() {
  const room = state.active ? rooms.get(state.active) : undefined;
  list.setAttribute("aria-busy", "true");
  list.replaceChildren(
    ...(room?.events.map((ev) => eventLi(ev, { own: isOwn(ev), nick: state.nick })) ?? []),
  );
  renderPending();
  list.setAttribute("aria-busy", "false");
  older.hidden = !room || room.noMore || room.events.length === 0;
}

/** The unsent messages of the shown room (from every tab), after the stored ones. */
function renderPending() {
  const stick = atBottom();
  for (const li of list.querySelectorAll("li.pending")) li.remove();
  const n = state.active;
  if (!n) return;
  /** Tabs whose first message here is shown: the rest of theirs wait behind it. */
  const heads = new Set();
  for (const item of outbox()) {
    if (item.room !== n) continue;
    const waiting = heads.has(item.tab);
    heads.add(item.tab);
    const shown = { ...item, note: item.note ?? (waiting ? "waiting…" : "sending…") };
    list.append(pendingLi(shown, state.nick, () => {
      updateOutbox((items) => items.filter((i) => i.clientId !== item.clientId));
      renderPending();
      kickQueues(); // the next one may wait behind a discarded one
      sendInput.focus();
    }));
  }
  if (stick) scroller.scrollTop = scroller.scrollHeight;
}

function renderTabs() {
  replaceKeepingFocus(
    tabs,
    [...rooms.values()].map((room) => {
      const b = button("", () => go(room.name));
      b.dataset.key = b.dataset.room = room.name;
      b.append(name("room-name", `#${room.name}`));
      if (room.name === state.active) b.setAttribute("aria-current", "page");
      if (room.unread) {
        b.append(" ", span("badge", String(room.unread)), span("sr-only", " unread"));
      }
      return b;
    }),
  );
  rove(tabs, state.active);
  updateTitle();
}

function renderListing() {
  const names = new Set([...state.listing.keys(), ...rooms.keys()]);
  const sorted = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  replaceKeepingFocus(
    roomList,
    sorted.map((n) => {
      const room = rooms.get(n);
      const count = room?.loaded ? room.memberCount : state.listing.get(n) ?? (room ? 1 : 0);
      const b = button("", () => go(n));
      b.dataset.key = n;
      const joined = room ? ", joined" : "";
      b.append(
        name("room-name", `#${n}`),
        span("count", String(count)),
        span("sr-only", ` ${count === 1 ? "member" : "members"}${joined}`),
      );
      if (n === state.active) b.setAttribute("aria-current", "true");
      const li = document.createElement("li");
      if (room) li.className = "joined";
      li.append(b);
      return li;
    }),
  );
  rove(roomList, state.active);
}

function renderMembers() {
  const room = state.active ? rooms.get(state.active) : undefined;
  const nicks = [...(room?.members ?? [])].sort((a, b) => a.localeCompare(b));
  $("members-title").textContent = room?.loaded ? `Members (${room.memberCount})` : "Members";
  members.replaceChildren(...nicks.map((nick) => {
    const li = document.createElement("li");
    li.dataset.nick = nick;
    li.append(name("nick", nick));
    if (nick === state.nick) li.className = "me"; // "(you)" comes from CSS
    return li;
  }));
  const left = room ? room.memberCount - room.members.size : 0;
  moreMembers.hidden = !room?.membersNext;
  moreMembers.textContent = left > 0 ? `Show more members (${left} more)` : "Show more members";
}

// ---- start -----------------------------------------------------------------------------------

updateCount();
if (state.token) startSession(false);
else endSession("");
