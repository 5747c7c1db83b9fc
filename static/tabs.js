// @ts-check
/// <reference lib="dom" />
// Tabs of one browser share one long poll: the tab holding the session's Web Lock polls and
// posts what it receives on a BroadcastChannel; the others listen. A lock is released when its
// tab closes or crashes, so a waiting tab takes over at once.

const CHANNEL = "parley";

/** Whether this browser can elect a leading tab (Web Locks exist only in secure contexts). */
export const canShare = typeof navigator !== "undefined" && Boolean(navigator.locks) &&
  typeof BroadcastChannel === "function";

/**
 * Runs `lead` while this tab leads for `session`: at once when no other tab does, else when the
 * leading one goes away. `lead` must settle once `signal` aborts; aborting also withdraws a
 * waiting request. Without Web Locks every tab leads for itself.
 * @param {string} session names the lock @param {AbortSignal} signal
 * @param {() => Promise<void>} lead
 */
export function whileLeading(session, signal, lead) {
  if (!canShare) {
    void lead();
    return;
  }
  navigator.locks.request(`parley.poll:${session}`, { signal }, () => lead())
    .catch(() => {/* aborted while waiting */});
}

/**
 * Holds a lock named for this tab as long as it lives, so other tabs can tell whether a tab that
 * queued messages is still there.
 * @param {string} tab
 */
export function holdTabLock(tab) {
  if (!canShare) return;
  navigator.locks.request(`parley.tab:${tab}`, () => new Promise(() => {})).catch(() => {});
}

/** @returns {Promise<Set<string> | null>} ids of the live tabs; null when that cannot be known */
export async function liveTabs() {
  if (!canShare) return null;
  const { held = [] } = await navigator.locks.query();
  const tabs = new Set();
  for (const lock of held) {
    if (lock.name?.startsWith("parley.tab:")) tabs.add(lock.name.slice("parley.tab:".length));
  }
  return tabs;
}

/**
 * The channel between the tabs of this browser: `post` reaches every other tab's `onMessage`.
 * @param {(message: any) => void} onMessage
 */
export function openChannel(onMessage) {
  if (typeof BroadcastChannel !== "function") return { post: (/** @type {unknown} */ _) => {} };
  const channel = new BroadcastChannel(CHANNEL);
  channel.addEventListener("message", (e) => onMessage(e.data));
  return {
    /** @param {unknown} message */
    post(message) {
      channel.postMessage(message);
    },
  };
}
