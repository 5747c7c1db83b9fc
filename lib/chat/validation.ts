/** Nicks: a letter or digit, then up to 31 letters, digits, `_`, `-` or `.`. */
const NICK = /^[\p{L}\p{N}][\p{L}\p{N}_.-]{0,31}$/u;
/** Room names: like nicks, up to 64 characters. */
const ROOM = /^[\p{L}\p{N}][\p{L}\p{N}_.-]{0,63}$/u;
/** Client ids for idempotent sends: UUIDs and similar opaque tokens. */
const CLIENT_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
/** C0 controls other than tab, LF and CR, and DEL: not text a person typed. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;

/** Why a nick is invalid, or null when it is fine. */
export function nickProblem(nick: unknown): string | null {
  if (typeof nick !== "string") return "The nick must be a string";
  if (!NICK.test(nick)) {
    return "A nick is 1 to 32 letters, digits, '_', '-' or '.', starting with a letter or digit";
  }
  return null;
}

/** Why a room name is invalid, or null when it is fine. */
export function roomProblem(room: string): string | null {
  if (!ROOM.test(room)) {
    return "A room name is 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit";
  }
  return null;
}

/** Why message text is invalid, or null when it is fine; `max` counts characters (code points). */
export function textProblem(text: unknown, max: number): string | null {
  if (typeof text !== "string") return "The message needs a text string";
  if (text.trim() === "") return "The message text is empty";
  if (!text.isWellFormed()) return "The message text is not valid Unicode";
  if (CONTROL.test(text)) return "The message text contains control characters";
  let length = 0;
  for (const _ of text) {
    if (++length > max) return `The message text is longer than ${max} characters`;
  }
  return null;
}

/** Why a client id is invalid, or null when it is fine (absent is fine). */
export function clientIdProblem(clientId: unknown): string | null {
  if (clientId === undefined) return null;
  if (typeof clientId !== "string" || !CLIENT_ID.test(clientId)) {
    return "clientId must be 1 to 64 letters, digits, '_', '.', ':' or '-'";
  }
  return null;
}
