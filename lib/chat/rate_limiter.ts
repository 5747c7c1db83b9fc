/** A rate as the flags spell it: `10/s`, `30/min`, `100/h`; 0 tokens means no limit. */
export interface Rate {
  tokens: number;
  periodMs: number;
}

const PERIODS: Record<string, number> = {
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

/** Parses `N/unit` (`s`, `min`, `h`) or `0`; throws RangeError with a readable message. */
export function parseRate(text: string): Rate {
  if (text.trim() === "0") return { tokens: 0, periodMs: 1000 };
  const match = /^(\d+)\/(s|sec|m|min|h)$/.exec(text.trim());
  if (!match) throw new RangeError(`"${text}" is not a rate like 10/s, 30/min or 0`);
  const tokens = Number(match[1]);
  if (!Number.isSafeInteger(tokens)) throw new RangeError(`"${text}" has too many tokens`);
  return { tokens, periodMs: PERIODS[match[2]!]! };
}

/** A token bucket: `rate.tokens` tokens, refilled evenly over `rate.periodMs`. */
export class TokenBucket {
  #rate: Rate;
  #tokens: number;
  #updated: number;

  constructor(rate: Rate, now: number) {
    this.#rate = rate;
    this.#tokens = rate.tokens;
    this.#updated = now;
  }

  /** True when the bucket is full again (it can be forgotten). */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.#rate.tokens;
  }

  /** Takes a token; returns 0 on success, else the milliseconds until one is available. */
  take(now: number): number {
    if (this.#rate.tokens === 0) return 0;
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) * this.#rate.periodMs / this.#rate.tokens);
  }

  #refill(now: number): void {
    const elapsed = now - this.#updated;
    this.#updated = now;
    if (elapsed <= 0) return;
    const refill = (elapsed * this.#rate.tokens) / this.#rate.periodMs;
    this.#tokens = Math.min(this.#rate.tokens, this.#tokens + refill);
  }
}

/** Token buckets by key (client address), forgetting full ones so memory stays bounded. */
export class RateLimiter {
  #rate: Rate;
  #buckets = new Map<string, TokenBucket>();

  constructor(rate: Rate) {
    this.#rate = rate;
  }

  /** Takes a token for `key`; 0 on success, else milliseconds to wait. */
  take(key: string, now: number): number {
    if (this.#rate.tokens === 0) return 0;
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.#rate, now);
      this.#buckets.set(key, bucket);
    }
    return bucket.take(now);
  }

  /** Drops buckets that refilled completely. */
  prune(now: number): void {
    for (const [key, bucket] of this.#buckets) if (bucket.full(now)) this.#buckets.delete(key);
  }
}
