// @ts-check
// The slash commands of the message field, as pure parsing (no DOM, no requests), so the rules
// can be unit-tested outside a browser. `/me TEXT` is not a request but a message: it is sent as
// typed ("/me waves") and every page shows it as an action ("* alice waves"); other API clients
// see the plain text, as IRC clients would.
import { normalizeRoom, roomProblem, shorten } from "./text.js";

/**
 * The commands and what they do, in the order `/help` lists them.
 * @type {readonly {name: string, usage: string, help: string, moderator?: boolean}[]}
 */
export const COMMANDS = [
  { name: "join", usage: "/join ROOM", help: "join a room, or show it" },
  { name: "leave", usage: "/leave", help: "leave the room or conversation shown" },
  {
    name: "msg",
    usage: "/msg NICK [TEXT]",
    help: "open a direct conversation with NICK and send TEXT there",
  },
  { name: "me", usage: "/me TEXT", help: "an action: “/me waves” shows as “* alice waves”" },
  { name: "topic", usage: "/topic [TEXT]", help: "show the room's topic; set it (moderators)" },
  {
    name: "kick",
    usage: "/kick NICK [REASON]",
    help: "remove NICK from this room",
    moderator: true,
  },
  {
    name: "ban",
    usage: "/ban NICK MINUTES [REASON]",
    help: "ban NICK for MINUTES; their session ends at once",
    moderator: true,
  },
  { name: "help", usage: "/help", help: "list these commands" },
];

/** A ban's length at most, in minutes (ten years, as the server allows). */
export const MAX_BAN_MINUTES = 10 * 365 * 24 * 60;

/**
 * What the message field asks for: a message to send, a command, or an error to show (the text
 * then stays in the field).
 * @typedef {{kind: "message", text: string}
 *   | {kind: "join", room: string}
 *   | {kind: "leave"}
 *   | {kind: "msg", nick: string, text: string}
 *   | {kind: "topic", text: string | null}
 *   | {kind: "kick", nick: string, reason?: string}
 *   | {kind: "ban", nick: string, minutes: number, reason?: string}
 *   | {kind: "help"}
 *   | {kind: "error", error: string}} Command
 */

/** @param {string} name */
const usage = (name) => ({
  kind: /** @type {const} */ ("error"),
  error: `Usage: ${COMMANDS.find((c) => c.name === name)?.usage ?? `/${name}`}`,
});

/**
 * Splits off the first word (a nick or a number) from the rest.
 * @param {string} rest @returns {[string, string]} the word ("" when none) and the rest, trimmed
 */
function firstWord(rest) {
  const match = /^(\S+)(?:\s+([\s\S]*))?$/u.exec(rest.trim());
  return match ? [match[1] ?? "", (match[2] ?? "").trim()] : ["", ""];
}

/** A nick as typed after a command: NFC, without a leading `@`. @param {string} word */
const nickOf = (word) => word.replace(/^@/, "").normalize("NFC");

/**
 * Reads what was typed into the message field. Text not starting with `/` is a message; `//`
 * sends a message starting with one `/`; `/me TEXT` is a message as typed; the rest are commands
 * (names ignore case).
 * @param {string} text @returns {Command}
 */
export function parseCommand(text) {
  if (!text.startsWith("/")) return { kind: "message", text };
  if (text.startsWith("//")) return { kind: "message", text: text.slice(1) };
  const match = /^\/(\S*)(?:\s+([\s\S]*))?$/u.exec(text);
  const name = (match?.[1] ?? "").toLowerCase();
  const rest = match?.[2] ?? "";
  switch (name) {
    case "me":
      return rest.trim() ? { kind: "message", text: `/me ${rest}` } : usage("me");
    case "join": {
      const [word, more] = firstWord(rest);
      if (!word || more) return usage("join");
      const room = normalizeRoom(word);
      const problem = roomProblem(room);
      return problem ? { kind: "error", error: problem } : { kind: "join", room };
    }
    case "leave":
      return rest.trim() ? usage("leave") : { kind: "leave" };
    case "msg": {
      const [word, message] = firstWord(rest);
      if (!word) return usage("msg");
      return { kind: "msg", nick: nickOf(word), text: message };
    }
    case "topic":
      return { kind: "topic", text: rest.trim() || null };
    case "kick": {
      const [word, reason] = firstWord(rest);
      if (!word) return usage("kick");
      return { kind: "kick", nick: nickOf(word), ...(reason ? { reason } : {}) };
    }
    case "ban": {
      const [word, after] = firstWord(rest);
      const [count, reason] = firstWord(after);
      const minutes = /^\d{1,9}$/.test(count) ? Number(count) : NaN;
      if (!word || !(minutes >= 1 && minutes <= MAX_BAN_MINUTES)) return usage("ban");
      return { kind: "ban", nick: nickOf(word), minutes, ...(reason ? { reason } : {}) };
    }
    case "help":
      return { kind: "help" };
    default:
      return {
        kind: "error",
        error: name
          ? `Unknown command /${shorten(name, 20)}. Type /help for the list.`
          : "Type a command after the /, or /help for the list.",
      };
  }
}

/**
 * The action of a `/me` message ("waves" of "/me waves"), or null for any other text.
 * @param {string} text
 */
export function actionText(text) {
  const match = /^\/me\s+(\S[\s\S]*)$/iu.exec(text);
  return match ? match[1] ?? null : null;
}
