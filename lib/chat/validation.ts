/**
 * What clients may send as names and text. Names are Unicode as people type them: normalised to
 * NFC, letters may carry combining marks, and two spellings are one nick when their full case
 * foldings match (`nameKey`; room names are compared as written). Invisible characters never make
 * up a name or a whole message.
 */

/** A name: a letter or digit (with its marks), then letters, marks, digits, `_`, `.` or `-`. */
const NAME = /^[\p{L}\p{N}][\p{L}\p{M}\p{N}_.-]*$/u;
/** Marks that change nothing visible or the text direction: never part of a name. */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]/u;
/** What a message that shows nothing consists of: spaces, invisible and format characters. */
const BLANK = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{Cf}]*$/u;
/** Characters in a nick and in a room name at most (code points, after NFC). */
export const MAX_NICK = 32;
export const MAX_ROOM = 64;
/** Client ids for idempotent sends: UUIDs and similar opaque tokens. */
const CLIENT_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
/** C0 controls other than tab, LF and CR, and DEL: not text a person typed. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;
/** Private (direct message) rooms: `@` and 16 lowercase hex characters (DESIGN.md). */
const PRIVATE_ROOM = /^@[0-9a-f]{16}$/;

/** A name as stored and shown: NFC. Non-strings pass through for the checks to refuse. */
export function normalizeName<T>(name: T): T {
  if (typeof name !== "string" || isAscii(name)) return name;
  return (name.isWellFormed() ? name.normalize("NFC") : name) as T;
}

/** ASCII text is its own NFC: most names skip the normaliser. */
function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * The key two names are compared by: full case folding of the NFC form. `toUpperCase` applies
 * the full mappings (ß → SS, ﬁ → FI), `toLowerCase` then folds to lower case, and the final
 * sigma, which lower-casing restores by position, is folded to σ as case folding does. Two
 * letters fold otherwise than that round trip: capital ẞ folds to "ss" (the round trip leaves ß),
 * and dotless ı folds to itself (upper-casing would make it I, then i).
 */
export function nameKey(name: string): string {
  return name.normalize("NFC").split("ı").map(foldCase).join("ı").normalize("NFC");
}

function foldCase(text: string): string {
  return text.toUpperCase().toLowerCase().replaceAll("ς", "σ").replaceAll("ß", "ss");
}

function nameProblem(name: unknown, what: string, max: number): string | null {
  const rule =
    `${what} is 1 to ${max} letters (with their marks), digits, '_', '-' or '.', starting with a letter or digit`;
  if (typeof name !== "string") return `${what} must be a string`;
  if (!name.isWellFormed() || INVISIBLE.test(name) || !NAME.test(name)) return rule;
  let length = 0;
  for (const _ of name) if (++length > max) return rule;
  return null;
}

/** Why a nick (already NFC) is invalid, or null when it is fine. */
export function nickProblem(nick: unknown): string | null {
  return nameProblem(nick, "A nick", MAX_NICK);
}

/** Why a room name (already NFC) is invalid, or null when it is fine. */
export function roomProblem(room: string): string | null {
  return nameProblem(room, "A room name", MAX_ROOM);
}

/** True for the name of a private (direct message) room. */
export function isPrivateRoom(room: string): boolean {
  return PRIVATE_ROOM.test(room);
}

/** Why message text is invalid, or null when it is fine; `max` counts characters (code points). */
export function textProblem(text: unknown, max: number, what = "message text"): string | null {
  if (typeof text !== "string") return `The ${what} must be a string`;
  if (!text.isWellFormed()) return `The ${what} is not valid Unicode`;
  if (BLANK.test(text)) return `The ${what} is empty`;
  if (CONTROL.test(text)) return `The ${what} contains control characters`;
  let length = 0;
  for (const _ of text) {
    if (++length > max) return `The ${what} is longer than ${max} characters`;
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
