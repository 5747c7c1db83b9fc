// @ts-check
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference lib="esnext" />
// Parley's page: a nick form, joined rooms as tabs, and ONE long poll for all of them.
// Plain ES module, no build step. Chat text is only ever set with textContent.

/**
 * @typedef {{id: number, type: "message" | "join" | "leave", room: string, nick: string,
 *   text?: string, ts: number, clientId?: string}} ChatEvent
 * @typedef {{text: string, clientId: string, note?: string, failed?: boolean}} Pending
 * @typedef {{name: string, events: ChatEvent[], ids: Set<number>, members: Set<string>,
 *   pending: Map<string, Pending>, unread: number, noMore: boolean, joined: boolean}} Room
 * @typedef {{status: number, ok: boolean, data: any, headers: Headers}} Reply
 */

const WAIT = 25; // seconds a poll may wait on the server
const PAGE = 50; // events per "load older"
const LATEST = Number.MAX_SAFE_INTEGER; // `before` that means "up to now"
const KEY = {
  token: "parley.token",
  nick: "parley.nick",
  cursor: "parley.cursor",
  rooms: "parley.rooms",
};

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const nickForm = /** @type {HTMLFormElement} */ ($("nick-form"));
const nickInput = /** @type {HTMLInputElement} */ ($("nick-input"));
const joinForm = /** @type {HTMLFormElement} */ ($("join-form"));
const joinInput = /** @type {HTMLInputElement} */ ($("join-input"));
const sendForm = /** @type {HTMLFormElement} */ ($("send-form"));
const sendInput = /** @type {HTMLTextAreaElement} */ ($("send-input"));
const older = /** @type {HTMLButtonElement} */ ($("load-older"));
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

/** localStorage that tolerates being unavailable (the session then lasts as long as the page). */
const store = {
  /** @param {string} key */
  get(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  /** @param {string} key @param {string | null} value null removes */
  set(key, value) {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch { /* unavailable */ }
  },
};

const state = {
  /** @type {string | null} */ token: store.get(KEY.token),
  nick: store.get(KEY.nick) ?? "",
  cursor: store.get(KEY.cursor) ?? "",
  /** @type {string | null} */ active: null,
  /** Aborted when the session ends: stops the poll and every request in flight. */
  /** @type {AbortController | null} */ ctl: null,
  /** @type {ReturnType<typeof setInterval> | undefined} */ timer: undefined,
};
/** Joined rooms in tab order. @type {Map<string, Room>} */
const rooms = new Map();

const enc = encodeURIComponent;
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** The reply to a request whose session has ended: it never settles, so its caller just stops. */
const never = () => /** @type {Promise<never>} */ (new Promise(() => {}));
/** @param {Reply} r @param {string} fallback */
const errorText = (r, fallback) => r.data?.error?.message ?? fallback;
/** @param {Reply} r seconds from Retry-After, 1–60 */
const retryAfter = (r) =>
  Math.min(60, Math.max(1, Math.ceil(Number(r.headers.get("Retry-After")) || 1)));

/** crypto.randomUUID exists only in secure contexts (https, localhost); plain http on a LAN lacks it. */
function uuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Calls the API with the session's token. A 401 ends the session; requests of an ended session
 * never settle. Throws on network errors and timeouts.
 * @param {string} method @param {string} path
 * @param {{body?: unknown, timeout?: number}} [options]
 * @returns {Promise<Reply>}
 */
async function api(method, path, { body, timeout = 20_000 } = {}) {
  const session = state.ctl;
  const req = new AbortController();
  const abort = () => req.abort();
  session?.signal.addEventListener("abort", abort);
  const timer = setTimeout(abort, timeout);
  /** @type {Record<string, string>} */
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
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
    if (res.status === 401 && session && session === state.ctl) {
      endSession("Your session has ended. Choose a nick to continue.");
    }
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

function startSession() {
  state.ctl = new AbortController();
  nickError.textContent = loginNote.textContent = "";
  $("login").hidden = true;
  $("chat").hidden = logout.hidden = me.hidden = false;
  me.textContent = `Signed in as ${state.nick}`;
  void pollLoop(state.ctl.signal);
  state.timer = setInterval(refreshRoomList, 15_000);
  /** @type {string[]} */
  let saved = [];
  try {
    saved = JSON.parse(store.get(KEY.rooms) ?? "[]");
  } catch { /* ignore */ }
  const first = roomFromHash() || "lobby";
  for (const name of new Set([...saved, first])) openRoom(name, name === first);
  sendInput.focus();
}

/** @param {string} note shown above the nick form */
function endSession(note) {
  state.ctl?.abort();
  state.ctl = null;
  clearInterval(state.timer);
  // Another tab may have started a new session meanwhile: only forget what is ours.
  if (store.get(KEY.token) === state.token) {
    for (const key of [KEY.token, KEY.cursor, KEY.rooms]) store.set(key, null);
  }
  state.token = state.active = null;
  state.cursor = "";
  rooms.clear();
  list.replaceChildren();
  status.textContent = notice.textContent = "";
  loginNote.textContent = note;
  $("chat").hidden = logout.hidden = me.hidden = true;
  $("login").hidden = false;
  nickInput.value = state.nick;
  nickInput.focus();
}

/** @param {string} message */
function showNickError(message) {
  nickError.textContent = message;
  nickInput.setAttribute("aria-invalid", String(Boolean(message)));
  if (message) nickInput.focus();
}

nickForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const nick = nickInput.value.trim();
  if (!nick) return showNickError("Please choose a nick.");
  const button = /** @type {HTMLButtonElement} */ (nickForm.querySelector("button"));
  button.disabled = true;
  try {
    await loggingOut;
    const r = await api("POST", "/api/session", { body: { nick } });
    if (r.ok && r.data?.token) {
      showNickError("");
      state.token = r.data.token;
      state.nick = r.data.nick ?? nick;
      state.cursor = r.data.cursor ?? "";
      store.set(KEY.token, state.token);
      store.set(KEY.nick, state.nick);
      store.set(KEY.cursor, state.cursor);
      startSession();
    } else if (r.status === 429) {
      showNickError(`${errorText(r, "Too many new sessions.")} Try again in ${retryAfter(r)} s.`);
    } else {
      showNickError(errorText(r, `Could not start a session (HTTP ${r.status}).`));
    }
  } catch {
    showNickError("Cannot reach the server. Please try again.");
  } finally {
    button.disabled = false;
  }
});

/** The DELETE of the last session: a new one waits for it, so the same nick is free again. */
let loggingOut = Promise.resolve();

logout.addEventListener("click", () => {
  const token = state.token;
  endSession(""); // stops the poll first, so its 401 is not taken for an expiry
  store.set(KEY.nick, null);
  loggingOut = fetch("/api/session", {
    method: "DELETE",
    headers: { Authorization: `Bearer ${token}` },
    keepalive: true,
    signal: AbortSignal.timeout(5000),
  }).then(() => {}, () => {});
});

// Logged out in another tab of this browser.
addEventListener("storage", (e) => {
  if (e.key === KEY.token && e.newValue === null && state.ctl) endSession("You logged out.");
});

// ---- the long poll ---------------------------------------------------------------------------

/** @param {AbortSignal} signal the session's */
async function pollLoop(signal) {
  let delay = 1000; // backoff after errors: 1, 2, 4 … 15 s
  let busy = 0; // consecutive 503s, retried promptly a few times
  while (!signal.aborted) {
    let pause = 0;
    try {
      const query = new URLSearchParams({ wait: String(WAIT) });
      if (state.cursor) query.set("cursor", state.cursor);
      const r = await api("GET", `/api/events?${query}`, { timeout: (WAIT + 15) * 1000 });
      if (r.ok) {
        const recovered = delay > 1000;
        status.textContent = "";
        delay = 1000;
        busy = 0;
        if (r.data.gap) await reloadRooms(() => true);
        else if (recovered) await reloadRooms((room) => !room.joined);
        for (const ev of r.data.events ?? []) applyEvent(ev);
        if (r.data.cursor) setCursor(r.data.cursor);
        continue; // also on `Connection: close` (server shutting down): reconnect at once
      }
      if (r.status === 400 && state.cursor) {
        setCursor(""); // invalid_cursor: start at the present and reload history
        await reloadRooms(() => true);
        continue;
      }
      if (r.status !== 503 || ++busy > 3) throw new Error(`HTTP ${r.status}`);
      pause = 200 + Math.random() * 500;
    } catch {
      pause = delay;
      delay = Math.min(delay * 2, 15_000);
      status.textContent = `Reconnecting… (retry in ${Math.round(pause / 1000)} s)`;
    }
    await sleep(pause);
  }
}

/** @param {string} cursor */
function setCursor(cursor) {
  state.cursor = cursor;
  store.set(KEY.cursor, cursor);
}

/** Re-joins rooms (a join of a joined room answers with its history). @param {(room: Room) => boolean} which */
async function reloadRooms(which) {
  await Promise.all([...rooms.values()].filter(which).map(loadRoom));
}

/** @param {ChatEvent} ev an event from the poll */
function applyEvent(ev) {
  const room = rooms.get(ev.room);
  if (!room || !addEvent(room, ev, true)) return;
  if (ev.type === "message") {
    if (room.name !== state.active) {
      room.unread++;
      renderTabs();
    }
    return;
  }
  if (ev.type === "join") room.members.add(ev.nick);
  else room.members.delete(ev.nick);
  if (room.name === state.active) renderMembers();
}

/**
 * Adds an event to a room once (dedupe by id), replacing the pending message with its clientId.
 * @param {Room} room @param {ChatEvent} ev @param {boolean} live render it now if shown
 * @returns {boolean} whether it was new
 */
function addEvent(room, ev, live) {
  if (room.ids.has(ev.id)) return false;
  room.ids.add(ev.id);
  const last = room.events.at(-1);
  room.events.push(ev);
  if (last && last.id > ev.id) room.events.sort((a, b) => a.id - b.id);
  if (ev.clientId && room.pending.delete(ev.clientId)) findPending(ev.clientId)?.remove();
  if (live && room.name === state.active) insertLi(eventLi(ev), ev.nick === state.nick);
  return true;
}

// ---- rooms -----------------------------------------------------------------------------------

function roomFromHash() {
  try {
    return decodeURIComponent(location.hash.slice(1)).trim();
  } catch {
    return location.hash.slice(1).trim();
  }
}

/** Shows a room, joining it first if needed. @param {string} name @param {boolean} [show] */
function openRoom(name, show = true) {
  let room = rooms.get(name);
  if (!room) {
    room = {
      name,
      events: [],
      ids: new Set(),
      members: new Set(),
      pending: new Map(),
      unread: 0,
      noMore: false,
      joined: false,
    };
    rooms.set(name, room);
    void loadRoom(room);
  }
  if (show) showRoom(name);
  else renderTabs();
}

/** Shows a room as a new history entry (so Back works). @param {string} name */
function go(name) {
  if (roomFromHash() !== name) history.pushState(null, "", `#${enc(name)}`);
  openRoom(name);
  sendInput.focus();
}

/** POST join: members and history (also after a gap: the join of a joined room is harmless). @param {Room} room */
async function loadRoom(room) {
  let r;
  try {
    r = await api("POST", `/api/rooms/${enc(room.name)}/join`);
  } catch {
    notice.textContent = `Could not join #${room.name}: the server is unreachable.`;
    return;
  }
  if (rooms.get(room.name) !== room) return; // left meanwhile
  if (!r.ok) {
    dropRoom(room.name);
    notice.textContent = errorText(r, `Could not join #${room.name}.`);
    return;
  }
  const canonical = String(r.data.room ?? room.name);
  if (canonical !== room.name) { // the server spells the name its own way
    const wasActive = state.active === room.name;
    rooms.delete(room.name);
    if (rooms.has(canonical)) return wasActive ? showRoom(canonical) : renderTabs();
    rooms.set(room.name = canonical, room);
    if (wasActive) state.active = canonical;
  }
  room.joined = true;
  room.members = new Set(r.data.members ?? []);
  /** @type {ChatEvent[]} */
  const past = r.data.history ?? [];
  // The join answers with history up to this session's own join; after a reload, what came since
  // (before our cursor) is in the newest page of history.
  const newest = await api(
    "GET",
    `/api/rooms/${enc(room.name)}/history?before=${LATEST}&limit=${PAGE}`,
  )
    .catch(() => null);
  /** @type {ChatEvent[] | undefined} */
  const recent = newest?.ok ? newest.data?.events : undefined;
  if (rooms.get(room.name) !== room) return;
  for (const ev of [...past, ...recent ?? []]) addEvent(room, ev, false);
  // Less than a page up to now: everything the server retains is here.
  if (recent ? recent.length < PAGE : past.length === 0) room.noMore = true;
  store.set(KEY.rooms, JSON.stringify([...rooms.keys()]));
  if (room.name === state.active) showRoom(room.name, false);
  else renderTabs();
  void refreshRoomList();
}

/** Forgets a room locally and shows another. @param {string} name */
function dropRoom(name) {
  rooms.delete(name);
  store.set(KEY.rooms, JSON.stringify([...rooms.keys()]));
  if (state.active === name) showRoom(rooms.keys().next().value ?? null);
  else renderTabs();
}

/** @param {string | null} name @param {boolean} [jump] scroll to the newest message */
function showRoom(name, jump = true) {
  const room = name === null ? undefined : rooms.get(name);
  state.active = room ? room.name : null;
  if (room) room.unread = 0;
  roomTitle.textContent = room ? `#${room.name}` : "No room: join one";
  document.title = room ? `#${room.name} · Parley` : "Parley";
  sendInput.placeholder = room ? `Message #${room.name}` : "Join a room first";
  sendInput.disabled = leave.hidden = !room;
  if (room && roomFromHash() !== room.name) history.replaceState(null, "", `#${enc(room.name)}`);
  if (!room && location.hash) history.replaceState(null, "", location.pathname + location.search);
  const offset = scroller.scrollHeight - scroller.scrollTop;
  renderTabs();
  renderMessages();
  renderMembers();
  scroller.scrollTop = jump ? scroller.scrollHeight : scroller.scrollHeight - offset;
}

// A fragment typed into the address bar, or Back/Forward.
for (const type of ["hashchange", "popstate"]) {
  addEventListener(type, () => {
    const name = roomFromHash();
    if (state.ctl && name) openRoom(name);
  });
}

joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = joinInput.value.trim().replace(/^#/, "");
  if (!name) return;
  joinInput.value = "";
  go(name);
});

leave.addEventListener("click", async () => {
  const name = state.active;
  if (!name) return;
  dropRoom(name);
  (state.active ? sendInput : joinInput).focus();
  try {
    const r = await api("POST", `/api/rooms/${enc(name)}/leave`);
    if (!r.ok && r.status !== 404) notice.textContent = errorText(r, `Could not leave #${name}.`);
  } catch {
    notice.textContent = `Could not reach the server to leave #${name}.`;
  }
  void refreshRoomList();
});

async function refreshRoomList() {
  if (!state.ctl) return;
  let r;
  try {
    r = await api("GET", "/api/rooms");
  } catch {
    return; // the poll's status line already tells about connectivity
  }
  if (!r.ok) return;
  /** @type {{name: string, members: number}[]} */
  const all = r.data?.rooms ?? [];
  replaceKeepingFocus(
    roomList,
    all.map(({ name, members: count }) => {
      const b = button(`#${name}`, () => go(name));
      b.dataset.key = name;
      const joined = rooms.has(name) ? ", joined" : "";
      b.append(" ", span("count", String(count)), span("sr-only", ` members${joined}`));
      const li = document.createElement("li");
      if (rooms.has(name)) li.className = "joined";
      li.append(b);
      return li;
    }),
  );
}

older.addEventListener("click", async () => {
  const room = state.active ? rooms.get(state.active) : undefined;
  const first = room?.events[0];
  if (!room || !first) return;
  older.disabled = true;
  try {
    const r = await api(
      "GET",
      `/api/rooms/${enc(room.name)}/history?before=${first.id}&limit=${PAGE}`,
    );
    if (!r.ok) notice.textContent = errorText(r, "Could not load older messages.");
    else {
      const events = r.data.events ?? [];
      for (const ev of events) addEvent(room, ev, false);
      if (events.length < PAGE) room.noMore = true;
      if (room.name === state.active) showRoom(room.name, false);
    }
  } catch {
    notice.textContent = "Could not load older messages: the server is unreachable.";
  } finally {
    older.disabled = false;
    if (older.hidden) scroller.focus();
  }
});

toggle.addEventListener("click", () => {
  const open = toggle.getAttribute("aria-expanded") !== "true";
  toggle.setAttribute("aria-expanded", String(open));
  sidebar.classList.toggle("open", open);
});

// ---- sending ---------------------------------------------------------------------------------

sendInput.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendForm.requestSubmit();
  }
});

sendForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = sendInput.value;
  if (!text.trim() || !state.active) return;
  sendInput.value = "";
  void sendMessage(state.active, text, uuid());
});

/**
 * Sends a message, shown as pending until accepted. The clientId makes retries idempotent.
 * @param {string} name @param {string} text @param {string} clientId @param {boolean} [retried]
 */
async function sendMessage(name, text, clientId, retried = false) {
  const room = rooms.get(name);
  if (!room) return;
  setPending(room, { text, clientId });
  let r;
  try {
    r = await api("POST", `/api/rooms/${enc(name)}/messages`, { body: { text, clientId } });
  } catch {
    return setPending(room, { text, clientId, note: "Not sent: no connection.", failed: true });
  }
  if (r.ok && r.data?.event) {
    notice.textContent = "";
    addEvent(room, r.data.event, true);
    return;
  }
  if (r.status === 429 && !retried) {
    const seconds = retryAfter(r);
    notice.textContent = `Slow down! Sending again in ${seconds} s.`;
    setPending(room, { text, clientId, note: `waiting ${seconds} s…` });
    await sleep(seconds * 1000);
    if (rooms.get(name) === room && room.pending.has(clientId)) {
      await sendMessage(name, text, clientId, true);
    }
    return;
  }
  const message = r.status === 429
    ? "Slow down! Not sent."
    : errorText(r, `Not sent (HTTP ${r.status}).`);
  notice.textContent = message;
  setPending(room, { text, clientId, note: message, failed: true });
}

/** @param {Room} room @param {Pending} p */
function setPending(room, p) {
  room.pending.set(p.clientId, p);
  if (room.name !== state.active) return;
  const old = findPending(p.clientId);
  if (old) old.replaceWith(pendingLi(room, p));
  else insertLi(pendingLi(room, p), true);
}

/** @param {string} clientId */
function findPending(clientId) {
  return [...list.children].find((li) =>
    li instanceof HTMLElement && li.dataset.clientId === clientId
  );
}

// ---- rendering -------------------------------------------------------------------------------

/** @param {string} className @param {string} text */
function span(className, text) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  return s;
}

/** @param {string} text @param {() => void} onClick */
function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

/** Replaces a container's children, keeping keyboard focus on the element with the same data-key. @param {HTMLElement} box @param {HTMLElement[]} children */
function replaceKeepingFocus(box, children) {
  const focused = document.activeElement;
  const key = focused instanceof HTMLElement && box.contains(focused)
    ? focused.dataset.key
    : undefined;
  box.replaceChildren(...children);
  if (key !== undefined) {
    box.querySelector(`[data-key="${CSS.escape(key)}"]`)?.closest("button")?.focus();
  }
}

/** @param {ChatEvent} ev */
function eventLi(ev) {
  const li = document.createElement("li");
  li.dataset.id = String(ev.id);
  const date = new Date(Number.isFinite(ev.ts) ? ev.ts : Date.now());
  const time = document.createElement("time");
  time.dateTime = date.toISOString();
  time.title = date.toLocaleString();
  time.textContent = `${String(date.getHours()).padStart(2, "0")}:${
    String(date.getMinutes()).padStart(2, "0")
  }`;
  if (ev.type === "message") {
    li.className = ev.nick === state.nick ? "message own" : "message";
    li.append(time, span("nick", ev.nick), span("text", ev.text ?? ""));
  } else {
    li.className = "system";
    li.append(time, span("text", `${ev.nick} ${ev.type === "join" ? "joined" : "left"}`));
  }
  return li;
}

/** @param {Room} room @param {Pending} p */
function pendingLi(room, p) {
  const li = document.createElement("li");
  li.className = p.failed ? "message own pending failed" : "message own pending";
  li.dataset.clientId = p.clientId;
  li.append(span("nick", state.nick), span("text", p.text), span("state", p.note ?? "sending…"));
  if (p.failed) {
    li.append(
      button("Retry", () => void sendMessage(room.name, p.text, p.clientId)),
      button("Discard", () => {
        room.pending.delete(p.clientId);
        li.remove();
        sendInput.focus();
      }),
    );
  }
  return li;
}

function atBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}

/** Inserts in id order; pending ones (no id) stay last. @param {HTMLElement} li @param {boolean} scroll */
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

function renderMessages() {
  const room = state.active ? rooms.get(state.active) : undefined;
  list.setAttribute("aria-busy", "true");
  list.replaceChildren(
    ...(room?.events.map(eventLi) ?? []),
    ...(room ? [...room.pending.values()].map((p) => pendingLi(room, p)) : []),
  );
  list.setAttribute("aria-busy", "false");
  older.hidden = !room || room.noMore || room.events.length === 0;
}

function renderTabs() {
  replaceKeepingFocus(
    tabs,
    [...rooms.values()].map((room) => {
      const b = button(`#${room.name}`, () => go(room.name));
      b.dataset.key = b.dataset.room = room.name;
      if (room.name === state.active) b.setAttribute("aria-current", "page");
      if (room.unread) {
        b.append(" ", span("badge", String(room.unread)), span("sr-only", " unread"));
      }
      return b;
    }),
  );
}

function renderMembers() {
  const room = state.active ? rooms.get(state.active) : undefined;
  const nicks = [...(room?.members ?? [])].sort((a, b) => a.localeCompare(b));
  $("members-title").textContent = room ? `Members (${nicks.length})` : "Members";
  members.replaceChildren(...nicks.map((nick) => {
    const li = document.createElement("li");
    li.textContent = li.dataset.nick = nick;
    if (nick === state.nick) li.className = "me"; // "(you)" comes from CSS
    return li;
  }));
}

// ---- start -----------------------------------------------------------------------------------

if (state.token) startSession();
else endSession("");
