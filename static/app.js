// @ts-check
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
// Parley's page: a nick form, joined rooms and direct conversations as tabs, and ONE long poll
// per browser, held by the leading tab and shared with the others (./tabs.js). Plain ES modules,
// no build step. Chat text is only ever set with textContent (./render.js).
import { COMMANDS, parseCommand } from "./commands.js";
import { button, eventLi, name, nickButton, pendingLi, span } from "./render.js";
import {
  addSavedDm,
  addSavedRoom,
  KEY,
  local,
  outbox,
  OUTBOX_MAX,
  perTab,
  rememberSent,
  removeSavedDm,
  removeSavedRoom,
  savedDms,
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
  isDirectRoom,
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
 *   loaded: boolean, loading: Promise<void> | null, draft: string, dm: string | null,
 *   topic: string, topicId: number}} Room
 *   `dm`: for a direct conversation the other person's nick ("" until known), else null.
 *   `topicId`: the id of the event the topic is known as of (older topic events change nothing).
 * @typedef {{status: number, ok: boolean, data: any, headers: Headers}} Reply
 */

const WAIT = 25; // seconds a poll may wait on the server
const PAGE = 50; // events per join answer and per "load older"
const MEMBERS_PAGE = 100; // nicks per "more members"
const EVENTS_KEPT = 1000; // events kept per room in memory; older ones come back on demand
const JOINS_AT_ONCE = 4; // rejoins after a new session, so sends and the poll still get through
/** Event types this page shows as lines; edits and deletes change them, others are skipped. */
const SHOWN = new Set(["message", "join", "leave", "topic"]);
const TYPING_EVERY = 3000; // ms between typing notices this tab sends per room (as the server)
const TYPING_SHOWN = 5000; // ms "alice is typing…" stays after a notice
/** The moderators' buttons beside each member: data-action and text. */
const MODERATOR_ACTIONS = /** @type {const} */ ([["kick", "Kick"], ["ban", "Ban"]]);

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
const adminInput = /** @type {HTMLInputElement} */ ($("admin-input"));
const dmList = $("dm-list");
const topicLine = $("topic");
const setTopic = $("set-topic");
const typingLine = $("typing");
const help = $("help");
const editing = $("editing");
const dialog = /** @type {HTMLDialogElement} */ ($("dialog"));
const dialogField = /** @type {HTMLInputElement} */ ($("dialog-field"));
const dialogMinutes = /** @type {HTMLInputElement} */ ($("dialog-minutes"));

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
  /** Whether the session is a moderator's (its token is saved as one). */
  moderator: false,
  /** The message being edited in the composer, and the draft it replaced there. */
  /** @type {{room: string, id: number, draft: string} | null} */ editing: null,
  /** When this tab last sent a typing notice, by room. */
  /** @type {Map<string, number>} */ typedAt: new Map(),
  /** Who is typing where, until when (ms since the epoch, this browser's clock). */
  /** @type {Map<string, Map<string, number>>} */ typers: new Map(),
  /** A command of the composer is running: Enter waits for it. */
  commandRunning: false,
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
/** Text ending as a sentence does. @param {string} text */
const sentence = (text) => (/[.!?…]$/.test(text) ? text : `${text}.`);

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
  state.moderator = local.get(KEY.moderator) === token;
  state.editing = null;
  state.typers = new Map();
  nickError.textContent = loginNote.textContent = joinError.textContent = "";
  setNotice("");
  $("login").hidden = true;
  $("chat").hidden =
    logout.hidden =
    me.hidden =
    $("skip-links").hidden =
      false;
  $("me-nick").textContent = state.nick;

  let { room: wanted, problem } = roomFromHash();
  const dms = savedDms(token);
  if (wanted && isDirectRoom(wanted) && !dms.some((d) => d.room === wanted)) {
    wanted = null;
    problem = "The direct conversation in the address has ended, or is not yours.";
  }
  saveWantedRoom(wanted);
  const names = savedRooms();
  const unread = savedUnread();
  rooms.clear();
  for (const n of names) rooms.set(n, newRoom(n, unread[n] ?? 0));
  for (const dm of dms) rooms.set(dm.room, newRoom(dm.room, unread[dm.room] ?? 0, dm.with));
  state.needsJoin = new Set(fresh ? names : []);
  state.active = null;
  showRoom(wanted ?? names[0] ?? null);
  if (problem) setNotice(problem);
  renderHelp();

  whileLeading(token, ctl.signal, () => leadPolls(ctl.signal));
  void loadListing();
  if (fresh) void joinAll(names, ctl.signal);
  else void checkDms(dms.map((d) => d.room).filter((n) => n !== state.active));
  kickQueues();
  if (document.activeElement === document.body || document.activeElement === nickInput) {
    sendInput.focus();
  }
}

/**
 * Adds the room of the address, or lobby when there is none at all, to the saved rooms (a direct
 * conversation is saved as one when it opens).
 * @param {string | null} wanted
 */
function saveWantedRoom(wanted) {
  if (wanted && !isDirectRoom(wanted)) addSavedRoom(wanted);
  else if (savedRooms().length === 0) addSavedRoom("lobby");
}

/** @param {string} n @param {number} unread @param {string | null} dm the other person's nick */
function newRoom(n, unread = 0, dm = isDirectRoom(n) ? "" : null) {
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
    dm,
    topic: "",
    topicId: 0,
  };
}

/** How a room is named on the page: `#room`, or `@nick` for a direct conversation. @param {string} n */
function label(n) {
  if (!isDirectRoom(n)) return `#${n}`;
  return `@${rooms.get(n)?.dm || "…"}`;
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
  state.editing = null;
  if (dialog.open) dialog.close("");
  settleDialog?.(null);
  rooms.clear();
  list.replaceChildren();
  roomList.replaceChildren();
  dmList.replaceChildren();
  typingLine.replaceChildren();
  editing.hidden = help.hidden = true;
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
    const secret = adminInput.value;
    const r = await api("POST", "/api/session", {
      body: secret ? { nick, admin: secret } : { nick },
    });
    if (r.ok && r.data?.token) {
      showNickError("");
      adminInput.value = "";
      state.token = r.data.token;
      state.nick = r.data.nick ?? nick;
      // The token last: other tabs follow when it changes, and need the rest by then.
      local.setJson(KEY.cursor, { token: state.token, cursor: r.data.cursor ?? "" });
      local.set(KEY.nick, state.nick);
      local.set(KEY.moderator, r.data.moderator === true ? state.token : null);
      saveWantedRoom(roomFromHash().room);
      local.set(KEY.token, state.token);
      startSession(true);
    } else if (r.status === 429) {
      showNickError(`${errorText(r, "Too many new sessions.")} Try again in ${retryAfter(r)} s.`);
    } else if (r.data?.error?.code === "banned") {
      const until = Number(r.data.error.until);
      const ends = Number.isFinite(until)
        ? ` The ban ends ${new Date(until).toLocaleString()}.`
        : "";
      showNickError(`${sentence(errorText(r, "You are banned"))}${ends}`);
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
  for (const key of [KEY.rooms, KEY.outbox, KEY.sent, KEY.cursor, KEY.dms, KEY.moderator]) {
    local.set(key, null);
  }
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
  } else if (e.key === KEY.rooms || e.key === KEY.dms) syncRooms();
  else if (e.key === KEY.outbox) {
    renderPending();
    kickQueues();
  } else if (e.key === KEY.sent) state.sent = sentIds(/** @type {string} */ (state.token));
});

// ---- the long poll, held by the leading tab --------------------------------------------------

/**
 * What the leading tab shares, and tabs tell each other.
 * @param {{kind: string, token?: string | null, events?: ChatEvent[], gap?: boolean,
 *   ephemeral?: unknown[], text?: string}} message
 */
function receive(message) {
  if (!message || message.token !== state.token || !state.ctl) return;
  if (message.kind === "events") {
    applyEvents(message.events ?? [], Boolean(message.gap));
    if (Array.isArray(message.ephemeral)) applyNotices(message.ephemeral);
  } else if (message.kind === "status") status.textContent = message.text ?? "";
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
        share({
          kind: "events",
          events: r.data?.events ?? [],
          gap: Boolean(r.data?.gap),
          ephemeral: r.data?.ephemeral ?? [],
        });
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
  // Conversations someone opened with this session: it sees them from its own join on, so the
  // other person's nick comes from the member list.
  for (const room of rooms.values()) if (room.dm === "") void learnDm(room);
  if (gap) {
    renderMessages();
    const active = state.active ? rooms.get(state.active) : undefined;
    if (active) void loadRoom(active);
  }
}

/** @param {ChatEvent} ev an event from the poll */
function applyEvent(ev) {
  let room = rooms.get(ev.room);
  if (!room && ev.type === "join" && isDirectRoom(ev.room)) room = discoverDm(ev.room);
  if (!room) {
    if (ev.type === "join") bumpListing(ev.room, 1);
    else if (ev.type === "leave") bumpListing(ev.room, -1);
    return;
  }
  if (room.dm === "" && ev.type === "join" && ev.nick !== state.nick) labelDm(room, ev.nick);
  if (!addEvent(room, ev, true)) return;
  if (ev.type === "message") {
    stopTyping(room.name, ev.nick);
    if (!isOwn(ev) && (room.name !== state.active || document.hidden)) {
      room.unread++;
      saveUnread();
      renderTabs();
    }
  } else if (ev.type === "join" || ev.type === "leave") {
    applyPresence(room, ev);
    if (ev.type === "leave") afterLeave(room, ev);
  }
}

/**
 * Someone opened a direct conversation with this session: it joins the list (labelled once the
 * other person's nick is known, never with the room's name).
 * @param {string} n
 */
function discoverDm(n) {
  const room = newRoom(n);
  rooms.set(n, room);
  renderTabs();
  return room;
}

/** Conversations whose other person is being asked for. @type {Set<string>} */
const learning = new Set();

/**
 * Asks who the other person of a conversation is (the members, not the history: messages that
 * come by the poll meanwhile still count as unread). One question per conversation at a time.
 * @param {Room} room
 */
async function learnDm(room) {
  if (learning.has(room.name)) return;
  learning.add(room.name);
  let r;
  try {
    r = await api("GET", `${roomPath(room.name, "members")}?limit=2`);
  } catch {
    return; // the next poll answer asks again
  } finally {
    learning.delete(room.name);
  }
  if (rooms.get(room.name) !== room || room.dm !== "") return;
  /** @type {unknown[]} */
  const nicks = Array.isArray(r.data?.members) ? r.data.members : [];
  const other = nicks.find((nick) => typeof nick === "string" && nick !== state.nick);
  if (typeof other === "string") labelDm(room, other);
  else if (r.status === 403 || r.status === 404 || r.ok) forgetRoom(room.name); // over already
}

/** @param {Room} room @param {string} nick the other person */
function labelDm(room, nick) {
  room.dm = nick;
  if (state.token) addSavedDm(state.token, { room: room.name, with: nick });
  renderTabs();
  if (room.name === state.active) showRoom(room.name, false);
}

/**
 * A leave that ends something here: any leave ends a direct conversation; being removed from a
 * room by a moderator takes the room off the list.
 * @param {Room} room @param {ChatEvent} ev
 */
function afterLeave(room, ev) {
  if (room.dm !== null) {
    endDm(room, ev.nick === state.nick ? "" : `${ev.nick} left`);
  } else if (ev.nick === state.nick && ev.by) {
    forgetRoom(room.name);
    const why = ev.reason ? `: ${ev.reason}` : "";
    setNotice(sentence(`You were removed from #${room.name} by ${ev.by}${why}`));
  }
}

/**
 * A direct conversation ended (a leave, or the server no longer knows it): it goes from the list
 * in every tab, with a short notice.
 * @param {Room} room @param {string} [why]
 */
function endDm(room, why = "") {
  if (rooms.get(room.name) !== room) return;
  const who = room.dm || "someone";
  forgetRoom(room.name);
  setNotice(`The conversation with ${who} has ended${why ? ` (${why})` : ""}.`);
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
 * Adds an event to a room once (dedupe by id), in id order. Edits and deletes change the message
 * they refer to instead; a topic event also sets the room's topic.
 * @param {Room} room @param {ChatEvent} ev @param {boolean} live render it now if shown
 * @returns {boolean} whether it was new
 */
function addEvent(room, ev, live) {
  if (ev.type === "edit" || ev.type === "delete") {
    changeMessage(room, ev);
    return false;
  }
  if (room.ids.has(ev.id)) return false;
  room.ids.add(ev.id);
  if (ev.type === "topic" && ev.id > room.topicId) {
    room.topic = ev.text ?? "";
    room.topicId = ev.id;
    if (room.name === state.active) renderTopic();
  }
  // Joins add nothing to a conversation of two.
  if (!SHOWN.has(ev.type) || (room.dm !== null && ev.type === "join")) return true;
  const last = room.events.at(-1);
  room.events.push(ev);
  if (last && last.id > ev.id) room.events.sort((a, b) => a.id - b.id);
  if (room.events.length > EVENTS_KEPT) {
    for (const gone of room.events.splice(0, room.events.length - EVENTS_KEPT)) {
      room.ids.delete(gone.id);
    }
    room.noMore = false;
  }
  if (live && room.name === state.active) insertLi(eventLi(ev, viewer(room, ev)), isOwn(ev));
  return true;
}

/**
 * Applies an edit or a delete to the message it refers to, wherever it is shown. Both may come
 * twice (the answer to this tab's request and the poll) or late: an edit older than the one
 * shown, or any edit after a delete, changes nothing.
 * @param {Room} room @param {{type: string, id: number, ref?: number, text?: string}} ev
 */
function changeMessage(room, ev) {
  const at = room.events.findIndex((e) => e.id === ev.ref);
  const message = room.events[at];
  if (!message || message.type !== "message" || message.deleted) return;
  /** @type {ChatEvent} */
  let changed;
  if (ev.type === "delete") {
    const { text: _, edited: __, ...rest } = message;
    changed = { ...rest, deleted: true };
  } else {
    if (typeof ev.text !== "string" || (message.editId ?? 0) >= ev.id) return;
    changed = { ...message, text: ev.text, edited: true, editId: ev.id };
  }
  room.events[at] = changed;
  if (ev.type === "delete" && state.editing?.room === room.name && state.editing.id === ev.ref) {
    cancelEdit();
    setNotice("The message you were editing was deleted.");
  }
  if (room.name !== state.active) return;
  const li = list.querySelector(`li[data-id="${changed.id}"]`);
  if (!(li instanceof HTMLElement)) return;
  const focused = document.activeElement;
  const action = focused instanceof HTMLElement && li.contains(focused)
    ? focused.dataset.action
    : undefined;
  const replacement = eventLi(changed, viewer(room, changed));
  li.replaceWith(replacement);
  if (action !== undefined) {
    const same = replacement.querySelector(`[data-action="${action}"]`);
    (same instanceof HTMLElement ? same : scroller).focus();
  }
}

/** What the reader may do with `ev` in `room`. @param {Room} room @param {ChatEvent} ev */
function viewer(room, ev) {
  const own = isOwn(ev);
  return {
    own,
    nick: state.nick,
    canEdit: own,
    canDelete: own || state.moderator,
    canDm: !own && room.dm === null && ev.nick !== state.nick,
  };
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
  if (!problem || isDirectRoom(n)) return { room: n, problem: null };
  return { room: null, problem: `“${shorten(n, 40)}” in the address is not a room. ${problem}` };
}

/** Joins a room here and in every tab (shared list), and shows it. @param {string} n */
function go(n) {
  if (isDirectRoom(n) && !rooms.has(n)) {
    setNotice("That direct conversation has ended, or is not yours.");
    return;
  }
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
        setNotice(`Could not load ${label(room.name)}: the server is unreachable.`);
      }
      return;
    }
    if (rooms.get(room.name) !== room) return; // left meanwhile
    if (!r.ok) {
      // A room the server will not let in goes; a busy server is asked again later.
      const refused = r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429;
      if (refused && room.dm !== null) return endDm(room);
      if (refused) forgetRoom(room.name);
      if (refused || room.name === state.active) {
        setNotice(errorText(r, `Could not join ${label(room.name)} (HTTP ${r.status}).`));
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
    // The answer's topic is the one as of its last event; a later topic event stays.
    const asOf = history.at(-1)?.id ?? 0;
    if (room.topicId <= asOf) {
      room.topic = typeof r.data?.topic === "string" ? r.data.topic : "";
      room.topicId = asOf;
    }
    // Less than a page up to now: everything the server retains is here.
    if (history.length < PAGE) room.noMore = true;
    room.loaded = true;
    if (room.dm === "") {
      const other = nicks.find((nick) => nick !== state.nick);
      if (other) labelDm(room, other);
    }
    if (room.dm === null) state.listing.set(room.name, room.memberCount);
    if (room.name === state.active) showRoom(room.name, false);
    else renderListing();
  })().finally(() => room.loading = null);
  return room.loading;
}

/**
 * Asks whether saved direct conversations still exist (their end may have come while no tab
 * polled: the server forgets the room with it); those that do not go with a notice.
 * @param {string[]} names
 */
async function checkDms(names) {
  for (const n of names) {
    let r;
    try {
      r = await api("GET", `${roomPath(n, "members")}?limit=1`);
    } catch {
      return; // unreachable: a later request tells
    }
    const room = rooms.get(n);
    if (room && (r.status === 403 || r.status === 404)) endDm(room);
  }
}

/**
 * Opens (or finds) the direct conversation with `nick` and lists it here and in every tab; it is
 * shown by the caller.
 * @param {string} nick @returns {Promise<{room: string} | {error: string}>}
 */
async function openDm(nick) {
  let r;
  try {
    r = await api("POST", "/api/dm", { body: { nick } });
  } catch {
    return { error: `Cannot reach the server to talk with ${nick}.` };
  }
  const n = r.data?.room;
  if (!r.ok || typeof n !== "string" || !isDirectRoom(n) || !state.token) {
    return { error: sentence(errorText(r, `Could not open a conversation with ${nick}`)) };
  }
  const other = typeof r.data.with === "string" ? r.data.with : nick;
  let room = rooms.get(n);
  if (!room) {
    room = newRoom(n, 0, other);
    rooms.set(n, room);
  }
  room.dm = other;
  addSavedDm(state.token, { room: n, with: other });
  room.members = new Set([state.nick, other]);
  room.memberCount = 2;
  room.membersNext = null;
  /** @type {ChatEvent[]} */
  const history = Array.isArray(r.data.history) ? r.data.history : [];
  for (const ev of history) addEvent(room, ev, false);
  if (history.length < PAGE) room.noMore = true;
  room.loaded = true;
  state.needsJoin.delete(n);
  return { room: n };
}

/** Opens the conversation with `nick` and shows it, or says why not. @param {string} nick */
async function talkTo(nick) {
  const opened = await openDm(nick);
  if ("error" in opened) return setNotice(opened.error);
  showRoom(opened.room, true, true);
  sendInput.focus();
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
  state.typers.delete(n);
  if (state.editing?.room === n) cancelEdit();
  if (isDirectRoom(n)) {
    if (state.token) removeSavedDm(state.token, n);
  } else removeSavedRoom(n);
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
  for (const dm of savedDms(state.token)) {
    const room = kept.get(dm.room) ?? newRoom(dm.room, 0, dm.with);
    room.dm = dm.with;
    rooms.set(dm.room, room);
  }
  // Conversations this tab heard of whose other person it does not know yet are not saved yet.
  for (const room of kept.values()) if (room.dm === "") rooms.set(room.name, room);
  if (state.active && !rooms.has(state.active)) {
    const gone = kept.get(state.active);
    setNotice(
      gone?.dm
        ? `The conversation with ${gone.dm} has ended.`
        : `You left ${label(state.active)} in another tab.`,
    );
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
    if (state.editing) cancelEdit();
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
  const title = room ? label(room.name) : "No room: join one";
  roomTitle.textContent = title;
  roomTitle.title = room ? title : "";
  sendInput.placeholder = room
    ? `Message ${room.dm !== null ? "@" : "#"}${shorten(room.dm ?? room.name, 16)}`
    : "Join a room first";
  sendInput.disabled = leave.hidden = !room;
  leave.setAttribute(
    "aria-label",
    room?.dm != null ? `Leave the conversation with ${room.dm || "…"}` : "Leave this room",
  );
  renderTopic();
  renderTyping();
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

leave.addEventListener("click", () => {
  if (state.active) void leaveRoom(state.active);
});

/**
 * Leaves a room, or a direct conversation (which ends it for the other person too), here and in
 * every tab.
 * @param {string} n
 */
async function leaveRoom(n) {
  const shown = label(n);
  forgetRoom(n);
  (state.active ? sendInput : joinInput).focus();
  try {
    const r = await api("POST", roomPath(n, "leave"));
    if (!r.ok && r.status !== 404) setNotice(errorText(r, `Could not leave ${shown}.`));
  } catch {
    setNotice(`Could not reach the server to leave ${shown}.`);
  }
  // The count follows this session's own leave event, which the poll delivers.
}

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
  if (e.isComposing) return;
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    sendForm.requestSubmit();
  } else if (e.key === "ArrowUp" && sendInput.value === "" && !state.editing) {
    const room = state.active ? rooms.get(state.active) : undefined;
    // While a message of this room waits to be sent, the last one is not known yet.
    const waiting = outbox().some((item) => item.room === state.active);
    const last = room?.events.findLast((ev) => ev.type === "message" && !ev.deleted && isOwn(ev));
    if (room && last && !waiting) {
      e.preventDefault();
      startEdit(room, last);
    }
  } else if (e.key === "Escape" && state.editing) {
    e.preventDefault();
    cancelEdit();
  } else if (e.key === "Escape" && !help.hidden) {
    e.preventDefault();
    help.hidden = true;
  }
});
sendInput.addEventListener("input", () => {
  updateCount();
  sendTyping();
});

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
  if (!text.trim() || !n || !state.token || state.commandRunning) return;
  if (state.editing) return void saveEdit(state.editing);
  const command = parseCommand(text);
  if (command.kind !== "message") return void runCommand(command, text);
  const problem = enqueue(n, command.text);
  if (problem) return setNotice(problem);
  clearComposer(text);
  setNotice("");
});

/**
 * Queues a message for a room; returns why it cannot be, or null.
 * @param {string} n @param {string} text
 */
function enqueue(n, text) {
  const length = countChars(text);
  if (length > MAX_MESSAGE) {
    return `This message has ${length} characters; the limit is ${MAX_MESSAGE}. Shorten it to send it.`;
  }
  if (outbox().length >= OUTBOX_MAX) {
    return "Too many messages are waiting to be sent. Wait for them, or discard some.";
  }
  updateOutbox((items) => [...items, { clientId: uuid(), room: n, text, tab }]);
  renderPending();
  kick(n);
  return null;
}

/** Empties the composer if it still holds `text` (it may have changed while a request ran). @param {string} text */
function clearComposer(text) {
  if (sendInput.value !== text) return;
  sendInput.value = "";
  updateCount();
}

/**
 * Runs a slash command. The typed text leaves the composer only when the command did what it
 * says; an error keeps it there to be corrected.
 * @param {import("./commands.js").Command} command @param {string} typed
 */
async function runCommand(command, typed) {
  const n = state.active;
  const room = n ? rooms.get(n) : undefined;
  if (!n || !room) return;
  /** Why this session cannot run a moderators' command here, or null. */
  const refusal = (/** @type {string} */ what, roomOnly = true) =>
    !state.moderator
      ? `Only moderators can use /${what}.`
      : roomOnly && room.dm !== null
      ? `/${what} works in rooms, not in a direct conversation.`
      : null;
  /** @type {string | null} */
  let error = null;
  setNotice("");
  state.commandRunning = true;
  try {
    switch (command.kind) {
      case "error":
        error = command.error;
        break;
      case "help":
        help.hidden = false;
        clearComposer(typed);
        break;
      case "join":
        clearComposer(typed);
        go(command.room);
        break;
      case "leave":
        clearComposer(typed);
        await leaveRoom(n);
        break;
      case "msg": {
        const opened = await openDm(command.nick);
        if ("error" in opened) {
          error = opened.error;
          break;
        }
        clearComposer(typed);
        showRoom(opened.room, true, true);
        if (command.text.trim()) error = enqueue(opened.room, command.text);
        break;
      }
      case "topic":
        if (command.text === null) {
          setNotice(room.topic ? `The topic: ${room.topic}` : `${label(n)} has no topic.`, true);
          clearComposer(typed);
          break;
        }
        error = refusal("topic") ?? await changeTopic(room, command.text);
        if (!error) clearComposer(typed);
        break;
      case "kick":
        error = refusal("kick") ?? await kickMember(room, command.nick, command.reason);
        if (!error) clearComposer(typed);
        break;
      case "ban":
        error = refusal("ban", false) ??
          await banNick(command.nick, command.minutes, command.reason);
        if (!error) clearComposer(typed);
        break;
    }
  } finally {
    state.commandRunning = false;
  }
  if (error) setNotice(error);
}

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
          `Not sent yet: cannot join ${label(n)}. Trying again in ${Math.round(delay / 1000)} s.`,
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
    } else if (room.dm !== null && (r.status === 403 || r.status === 404)) {
      endDm(room); // the conversation is gone, with what waited to be sent there
      return;
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
  setNotice(
    `Not sent${shown ? "" : ` to ${label(item.room)}`}: ${
      sentence(reason)
    } The text is back in the composer.`,
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

// ---- edits and deletes, by authors and moderators ---------------------------------------------

/**
 * Puts a message of this session into the composer to edit it (Enter saves, Escape cancels).
 * @param {Room} room @param {ChatEvent} ev
 */
function startEdit(room, ev) {
  if (room.name !== state.active) return;
  if (state.editing) cancelEdit();
  state.editing = { room: room.name, id: ev.id, draft: sendInput.value };
  sendInput.value = ev.text ?? "";
  editing.hidden = false;
  sendForm.classList.add("editing");
  updateCount();
  sendInput.focus();
  sendInput.setSelectionRange(sendInput.value.length, sendInput.value.length);
}

/** Leaves edit mode and gives the composer back its draft. */
function cancelEdit() {
  const edit = state.editing;
  if (!edit) return;
  stopEditing();
  sendInput.value = edit.draft;
  updateCount();
}

/** Leaves edit mode, keeping what the composer holds. */
function stopEditing() {
  state.editing = null;
  editing.hidden = true;
  sendForm.classList.remove("editing");
}

/**
 * Saves an edit. A refusal that no retry can change (the edit window passed, the message is
 * gone) leaves edit mode and keeps the text, which Enter then sends as a new message.
 * @param {{room: string, id: number, draft: string}} edit
 */
async function saveEdit(edit) {
  const room = rooms.get(edit.room);
  const message = room?.events.find((ev) => ev.id === edit.id);
  const text = sendInput.value;
  if (!room || !message || message.deleted) {
    cancelEdit();
    return setNotice("That message is no longer there to edit.");
  }
  if (text === message.text) return cancelEdit();
  const length = countChars(text);
  if (length > MAX_MESSAGE) {
    return setNotice(`The new text has ${length} characters; the limit is ${MAX_MESSAGE}.`);
  }
  state.commandRunning = true;
  let r;
  try {
    r = await api("PATCH", roomPath(room.name, `messages/${edit.id}`), { body: { text } });
  } catch {
    return setNotice("Could not save the edit: the server is unreachable. Try again.");
  } finally {
    state.commandRunning = false;
  }
  if (r.ok && r.data?.event) {
    changeMessage(room, r.data.event);
    if (state.editing === edit) {
      cancelEdit();
      setNotice("");
    }
    return;
  }
  const code = r.data?.error?.code;
  const final = code === "edit_window_passed" || code === "not_found" || code === "not_author";
  if (final && state.editing === edit) {
    stopEditing();
    return setNotice(
      `${sentence(errorText(r, "This message cannot be edited"))} The text stays here; Enter ` +
        "sends it as a new message.",
    );
  }
  setNotice(sentence(errorText(r, `Could not save the edit (HTTP ${r.status})`)));
}

/**
 * Deletes a message after asking: one's own, or any as a moderator.
 * @param {Room} room @param {ChatEvent} ev
 */
async function deleteMessage(room, ev) {
  const own = isOwn(ev);
  const answer = await ask({
    title: own ? "Delete your message?" : `Delete the message of ${ev.nick}?`,
    text: `“${shorten(ev.text ?? "", 120)}” goes for everyone, for good.`,
    ok: "Delete",
  });
  if (!answer) return;
  let r;
  try {
    r = await api("DELETE", roomPath(room.name, `messages/${ev.id}`));
  } catch {
    return setNotice("Could not delete the message: the server is unreachable.");
  }
  // Gone already (404) is as good as deleted; the poll's delete event follows either way.
  if (r.ok || r.data?.error?.code === "not_found") {
    changeMessage(room, { type: "delete", id: 0, ref: ev.id });
  } else setNotice(sentence(errorText(r, `Could not delete the message (HTTP ${r.status})`)));
}

list.addEventListener("click", (e) => {
  const target = e.target instanceof Element ? e.target.closest("button[data-action]") : null;
  const li = target?.closest("li[data-id]");
  const room = state.active ? rooms.get(state.active) : undefined;
  if (!(target instanceof HTMLElement) || !(li instanceof HTMLElement) || !room) return;
  const ev = room.events.find((event) => String(event.id) === li.dataset.id);
  if (!ev) return;
  if (target.dataset.action === "dm") void talkTo(ev.nick);
  else if (target.dataset.action === "edit") startEdit(room, ev);
  else if (target.dataset.action === "delete") void deleteMessage(room, ev);
});

$("edit-cancel").addEventListener("click", () => {
  cancelEdit();
  sendInput.focus();
});

// ---- moderation ------------------------------------------------------------------------------

/**
 * Sets (or, with "", clears) a room's topic; returns why not, or null.
 * @param {Room} room @param {string} text
 */
async function changeTopic(room, text) {
  let r;
  try {
    r = await api("PUT", roomPath(room.name, "topic"), { body: { topic: text } });
  } catch {
    return "Could not set the topic: the server is unreachable.";
  }
  if (!r.ok) return sentence(errorText(r, `Could not set the topic (HTTP ${r.status})`));
  if (r.data?.event && rooms.get(room.name) === room) addEvent(room, r.data.event, true);
  return null;
}

/**
 * Removes someone from a room; returns why not, or null.
 * @param {Room} room @param {string} nick @param {string} [reason]
 */
async function kickMember(room, nick, reason) {
  let r;
  try {
    r = await api("POST", roomPath(room.name, "kick"), {
      body: reason ? { nick, reason } : { nick },
    });
  } catch {
    return `Could not remove ${nick}: the server is unreachable.`;
  }
  if (r.status === 404) return `${nick} is not in ${label(room.name)}.`;
  if (!r.ok) return sentence(errorText(r, `Could not remove ${nick} (HTTP ${r.status})`));
  return null;
}

/**
 * Bans a nick for some minutes (its session ends at once); returns why not, or null, and says
 * until when.
 * @param {string} nick @param {number} minutes @param {string} [reason]
 */
async function banNick(nick, minutes, reason) {
  let r;
  try {
    r = await api("POST", "/api/bans", {
      body: { nick, minutes, ...(reason ? { reason } : {}) },
    });
  } catch {
    return `Could not ban ${nick}: the server is unreachable.`;
  }
  if (!r.ok) return sentence(errorText(r, `Could not ban ${nick} (HTTP ${r.status})`));
  const until = Number(r.data?.ban?.until);
  const ends = Number.isFinite(until) ? new Date(until).toLocaleString() : `in ${minutes} min`;
  setNotice(`${nick} is banned until ${ends}.`, true);
  return null;
}

members.addEventListener("click", (e) => {
  const target = e.target instanceof Element ? e.target.closest("button[data-action]") : null;
  const nick = target?.closest("li[data-nick]");
  const room = state.active ? rooms.get(state.active) : undefined;
  if (!(target instanceof HTMLElement) || !(nick instanceof HTMLElement) || !room) return;
  const who = nick.dataset.nick ?? "";
  if (target.dataset.action === "dm") void talkTo(who);
  else if (target.dataset.action === "kick") void askKick(room, who);
  else if (target.dataset.action === "ban") void askBan(who);
});

/** @param {Room} room @param {string} nick */
async function askKick(room, nick) {
  const answer = await ask({
    title: `Remove ${nick} from ${label(room.name)}?`,
    text: "They may join again; a ban keeps them out.",
    field: { label: "Reason (optional)", value: "" },
    ok: "Kick",
  });
  if (!answer) return;
  const error = await kickMember(room, nick, answer.field.trim() || undefined);
  if (error) setNotice(error);
}

/** @param {string} nick */
async function askBan(nick) {
  const answer = await ask({
    title: `Ban ${nick}?`,
    text: "Their session ends at once, and the nick cannot come back until the ban ends.",
    field: { label: "Reason (optional)", value: "" },
    minutes: true,
    ok: "Ban",
  });
  if (!answer) return;
  const error = await banNick(nick, answer.minutes, answer.field.trim() || undefined);
  if (error) setNotice(error);
}

setTopic.addEventListener("click", async () => {
  const room = state.active ? rooms.get(state.active) : undefined;
  if (!room || !state.moderator) return;
  const answer = await ask({
    title: `Topic of ${label(room.name)}`,
    text: "Everyone in the room sees it under the room's name. Leave it empty to clear it.",
    field: { label: "Topic", value: room.topic },
    ok: "Set topic",
  });
  if (!answer) return;
  const error = await changeTopic(room, answer.field.trim());
  if (error) setNotice(error);
});

/** Settles the question the dialog asks now (see ask). */
/** @type {((answer: {field: string, minutes: number} | null) => void) | null} */
let settleDialog = null;

/**
 * Asks in a modal dialog (focus stays inside; Escape cancels); resolves with what was entered,
 * or null when cancelled.
 * @param {{title: string, text: string, ok: string, field?: {label: string, value: string},
 *   minutes?: boolean}} question
 * @returns {Promise<{field: string, minutes: number} | null>}
 */
function ask(question) {
  settleDialog?.(null);
  $("dialog-title").textContent = question.title;
  $("dialog-text").textContent = question.text;
  $("dialog-field-row").hidden = !question.field;
  $("dialog-field-label").textContent = question.field?.label ?? "";
  dialogField.value = question.field?.value ?? "";
  $("dialog-minutes-row").hidden = !question.minutes;
  dialogMinutes.required = Boolean(question.minutes);
  dialogMinutes.value = "60";
  $("dialog-ok").textContent = question.ok;
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => {
    settleDialog = (answer) => {
      settleDialog = null;
      resolve(answer);
      // What it quoted (a message deleted by now) does not linger in the page.
      $("dialog-text").textContent = "";
    };
  });
}

// The answer is taken from the form and the buttons, not from the dialog's close event, which a
// hidden tab fires only once it is shown again.
$("dialog-form").addEventListener("submit", () => {
  settleDialog?.({ field: dialogField.value, minutes: Number(dialogMinutes.value) });
});
$("dialog-cancel").addEventListener("click", () => {
  dialog.close("");
  settleDialog?.(null);
});
dialog.addEventListener("cancel", () => settleDialog?.(null));
dialog.addEventListener("close", () => settleDialog?.(null));

// ---- typing ----------------------------------------------------------------------------------

/** Tells the room that this person types: at most once per TYPING_EVERY per room and tab. */
function sendTyping() {
  const n = state.active;
  const text = sendInput.value;
  if (!n || !state.ctl || state.editing || !text.trim()) return;
  if (parseCommand(text).kind !== "message") return;
  const now = Date.now();
  if (now - (state.typedAt.get(n) ?? 0) < TYPING_EVERY) return;
  state.typedAt.set(n, now);
  api("POST", roomPath(n, "typing")).then((r) => {
    const room = rooms.get(n);
    if (room?.dm != null && (r.status === 403 || r.status === 404)) endDm(room);
  }, () => {/* a notice that did not go is no loss */});
}

/** Takes the ephemeral notices of a poll answer. @param {unknown[]} notices */
function applyNotices(notices) {
  const until = Date.now() + TYPING_SHOWN;
  for (const notice of notices) {
    const { type, room, nick } = /** @type {{type?: unknown, room?: unknown, nick?: unknown}} */ (
      notice ?? {}
    );
    if (type !== "typing" || typeof room !== "string" || typeof nick !== "string") continue;
    if (nick === state.nick || !rooms.has(room)) continue;
    let typers = state.typers.get(room);
    if (!typers) state.typers.set(room, typers = new Map());
    typers.set(nick, until);
  }
  renderTyping();
}

/** Someone's message came: they are done typing. @param {string} n @param {string} nick */
function stopTyping(n, nick) {
  if (state.typers.get(n)?.delete(nick) && n === state.active) renderTyping();
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let typingTimer;

/** Shows who types in the shown room, and comes back when the next of them expires. */
function renderTyping() {
  clearTimeout(typingTimer);
  const now = Date.now();
  let next = Infinity;
  for (const [n, typers] of state.typers) {
    for (const [nick, until] of typers) {
      if (until <= now) typers.delete(nick);
      else if (n === state.active) next = Math.min(next, until);
    }
    if (typers.size === 0) state.typers.delete(n);
  }
  const nicks = [...(state.active ? state.typers.get(state.active)?.keys() ?? [] : [])];
  if (nicks.length === 0) typingLine.replaceChildren();
  else if (nicks.length === 1) {
    typingLine.replaceChildren(name("nick", nicks[0] ?? ""), " is typing…");
  } else if (nicks.length === 2) {
    typingLine.replaceChildren(
      name("nick", nicks[0] ?? ""),
      " and ",
      name("nick", nicks[1] ?? ""),
      " are typing…",
    );
  } else typingLine.replaceChildren(`${nicks.length} people are typing…`);
  if (next < Infinity) typingTimer = setTimeout(renderTyping, next - now + 20);
}

// ---- rendering -------------------------------------------------------------------------------

/** @param {string} text @param {boolean} [info] news rather than a problem */
function setNotice(text, info = false) {
  notice.textContent = text;
  notice.classList.toggle("info", info);
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
  const where = state.active ? `${label(state.active)} · ` : "";
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

for (const box of [roomList, dmList, tabs]) {
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
    ...(room?.events.map((ev) => eventLi(ev, viewer(room, ev))) ?? []),
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
      b.append(name("room-name", label(room.name)));
      if (room.dm !== null) {
        b.classList.add("dm");
        b.prepend(span("sr-only", "Direct messages with "));
      }
      if (room.name === state.active) b.setAttribute("aria-current", "page");
      if (room.unread) {
        b.append(" ", span("badge", String(room.unread)), span("sr-only", " unread"));
      }
      return b;
    }),
  );
  rove(tabs, state.active);
  renderDms();
  updateTitle();
}

/** The direct conversations, apart from the rooms, by the other person's nick. */
function renderDms() {
  const dms = [...rooms.values()].filter((room) => room.dm !== null);
  replaceKeepingFocus(
    dmList,
    dms.map((room) => {
      const b = button("", () => go(room.name));
      b.dataset.key = b.dataset.room = room.name;
      b.append(name("room-name", room.dm || "…"));
      if (room.unread) {
        b.append(span("badge", String(room.unread)), span("sr-only", " unread"));
      }
      if (room.name === state.active) b.setAttribute("aria-current", "true");
      const li = document.createElement("li");
      li.append(b);
      return li;
    }),
  );
  rove(dmList, state.active);
  $("dm-hint").hidden = dms.length > 0;
}

/** The topic under the room's name, and the moderators' button to set it. */
function renderTopic() {
  const room = state.active ? rooms.get(state.active) : undefined;
  const text = room?.dm != null
    ? `Only you and ${room.dm || "the other person"} see this conversation.`
    : room?.topic ?? "";
  topicLine.textContent = text;
  topicLine.title = text;
  topicLine.hidden = !text;
  topicLine.classList.toggle("private", room?.dm != null);
  setTopic.hidden = !state.moderator || !room || room.dm !== null;
}

/** The list of commands `/help` shows. */
function renderHelp() {
  const slashes = document.createElement("li");
  const code = document.createElement("code");
  code.textContent = "//";
  slashes.append(code, " at the start sends a message starting with /");
  $("help-list").replaceChildren(
    ...COMMANDS.map((command) => {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = command.usage;
      const only = command.moderator && !state.moderator ? " (moderators)" : "";
      li.append(code, ` ${command.help}${only}`);
      return li;
    }),
    slashes,
  );
}

$("help-close").addEventListener("click", () => {
  help.hidden = true;
  sendInput.focus();
});

function renderListing() {
  const names = new Set([...state.listing.keys(), ...rooms.keys()].filter((n) => !isDirectRoom(n)));
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
  const inRoom = room?.dm === null;
  replaceKeepingFocus(
    members,
    nicks.map((nick) => {
      const li = document.createElement("li");
      li.dataset.nick = nick;
      if (nick === state.nick) {
        li.className = "me"; // "(you)" comes from CSS
        li.append(name("nick", nick));
        return li;
      }
      if (!inRoom) {
        li.append(name("nick", nick));
        return li;
      }
      const talk = nickButton(nick, "nick member");
      talk.dataset.key = `dm ${nick}`;
      talk.append(span("sr-only", ": direct message"));
      li.append(talk);
      if (state.moderator) {
        for (const [action, text] of MODERATOR_ACTIONS) {
          const b = button(text, () => {});
          b.dataset.action = action;
          b.dataset.key = `${action} ${nick}`;
          b.className = "mod";
          b.setAttribute("aria-label", `${text} ${nick}`);
          li.append(b);
        }
      }
      return li;
    }),
  );
  const left = room ? room.memberCount - room.members.size : 0;
  moreMembers.hidden = !room?.membersNext;
  moreMembers.textContent = left > 0 ? `Show more members (${left} more)` : "Show more members";
}

// ---- start -----------------------------------------------------------------------------------

updateCount();
if (state.token) startSession(false);
else endSession("");
