import type { StoredEvent, StoredSession } from "../storage/event_log.ts";
import { type Rate, TokenBucket } from "./rate_limiter.ts";

/** Client ids remembered per session for idempotent sends. */
const CLIENT_IDS_KEPT = 1000;

/** A signed-in client: its nick, token, rooms, open polls and send budget. */
export class Session {
  readonly id: string;
  readonly token: string;
  readonly nick: string;
  readonly createdAt: number;
  /** Joined rooms: name → id of the session's own join event there. */
  readonly rooms = new Map<string, number>();
  /** Last authenticated request or end of a poll, for presence. */
  lastSeen: number;
  /** Polls open right now; a session with one is present whatever `lastSeen` says. */
  openPolls = 0;
  readonly sendBucket: TokenBucket;
  /** Sends by client id, oldest first (Map keeps insertion order). */
  readonly sent = new Map<string, StoredEvent>();
  /** Sends by client id still being committed, so a quick retry waits for the first. */
  readonly sending = new Map<string, Promise<StoredEvent>>();

  constructor(stored: StoredSession, sendRate: Rate, now: number) {
    this.id = stored.id;
    this.token = stored.token;
    this.nick = stored.nick;
    this.createdAt = stored.createdAt;
    for (const [room, joinId] of Object.entries(stored.rooms)) this.rooms.set(room, joinId);
    this.lastSeen = now;
    this.sendBucket = new TokenBucket(sendRate, now);
  }

  /** Remembers a committed send under its client id, forgetting the oldest beyond a bound. */
  remember(event: StoredEvent): void {
    if (event.clientId === undefined) return;
    this.sent.set(event.clientId, event);
    if (this.sent.size > CLIENT_IDS_KEPT) {
      this.sent.delete(this.sent.keys().next().value!);
    }
  }

  /** The form the event log stores. */
  toStored(): StoredSession {
    return {
      id: this.id,
      token: this.token,
      nick: this.nick,
      createdAt: this.createdAt,
      rooms: Object.fromEntries(this.rooms),
    };
  }
}
