import type { QueryParams } from "./types.ts";

const lenient = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Query parameters read straight from the raw query string when asked for: a handler asks for one
 * or two names, so nothing is split, decoded or stored up front (URLSearchParams does all three).
 * Decoding follows URLSearchParams: `+` is a space, `%XX` a byte, bytes are UTF-8 (malformed ones
 * become U+FFFD), and a `%` that starts no escape stays as it is.
 */
export class RawQuery implements QueryParams {
  #raw: string;

  constructor(raw: string) {
    this.#raw = raw;
  }

  *[Symbol.iterator](): IterableIterator<[string, string]> {
    for (const part of this.#raw.split("&")) {
      if (part === "") continue;
      const eq = part.indexOf("=");
      yield eq < 0
        ? [decodeComponent(part), ""]
        : [decodeComponent(part.slice(0, eq)), decodeComponent(part.slice(eq + 1))];
    }
  }

  get(name: string): string | null {
    const raw = this.#raw;
    let start = 0;
    while (start <= raw.length && raw.length > 0) {
      let end = raw.indexOf("&", start);
      if (end < 0) end = raw.length;
      if (end > start) {
        const eq = raw.indexOf("=", start);
        const keyEnd = eq >= 0 && eq < end ? eq : end;
        if (decodeComponent(raw.slice(start, keyEnd)) === name) {
          return keyEnd === end ? "" : decodeComponent(raw.slice(keyEnd + 1, end));
        }
      }
      start = end + 1;
    }
    return null;
  }
}

/** Decodes one name or value of `application/x-www-form-urlencoded`. */
export function decodeComponent(part: string): string {
  const plus = part.includes("+");
  if (!plus && !part.includes("%")) return part;
  const text = plus ? part.replaceAll("+", " ") : part;
  if (!text.includes("%")) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 37 /* % */ && i + 2 < text.length && isHex(text, i + 1) && isHex(text, i + 2)) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      // Not ASCII: this character's UTF-8 bytes (a surrogate pair counts as one character).
      const cp = text.codePointAt(i)!;
      for (const b of encoder.encode(String.fromCodePoint(cp))) bytes.push(b);
      if (cp > 0xffff) i++;
    }
  }
  return lenient.decode(new Uint8Array(bytes));
}

function isHex(text: string, at: number): boolean {
  const c = text.charCodeAt(at);
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
