// What the page knows about the user's in-app messages: the latest copy of each message
// seen (from the stream, the inbox or a state report), the inbox's paging, and the unread
// count.
//
// The unread count is the server's (Heartbeat.unread_count, ListInboxResponse.unread_count)
// adjusted by what happened since: a message first seen that was created after that count
// was taken adds one, a known message becoming read or archived takes one away (and
// back). Each new server count replaces it.

import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
import { isExpired } from "./dedupe";

export function isUnread(m: Message): boolean {
  return m.readTime === undefined && m.archiveTime === undefined;
}

function createdMs(m: Message): number {
  return m.createTime ? timestampMs(m.createTime) : 0;
}

export class MessageStore {
  private readonly messages = new Map<string, Message>();
  private unread = 0;
  /** Server time (ms) the unread count was taken at; messages created after it are not in it. */
  private countedAt = -Infinity;
  /** Server time minus local time, from heartbeats. */
  skewMs = 0;
  /** ListInbox paging: undefined before the first page, "" after the last one. */
  nextPageToken: string | undefined;

  constructor(private readonly changed: (unreadChanged: boolean) => void) {}

  get unreadCount(): number {
    return this.unread;
  }

  /** The local clock corrected by the server's. */
  now(): number {
    return Date.now() + this.skewMs;
  }

  get(id: string): Message | undefined {
    return this.messages.get(id);
  }

  /** Sets the server's count, taken at server time `atMs`. */
  setUnread(count: number, atMs: number): void {
    this.countedAt = atMs;
    this.setCount(count);
  }

  /**
   * Records the latest copy of a message. `counted`: the message is already in the
   * server count just set (it came in the same ListInbox answer).
   */
  upsert(message: Message, counted = false): void {
    if (!message.id || message.content?.body.case !== "inApp") return;
    const incoming = message;
    const old = this.messages.get(message.id);
    if (old) {
      // A message's state only moves forward, so an answer overtaken by a later one
      // (READ answered after ARCHIVED) must not bring an older state back.
      message = {
        ...message,
        state: Math.max(old.state, message.state),
        readTime: message.readTime ?? old.readTime,
        archiveTime: message.archiveTime ?? old.archiveTime,
        displayTime: message.displayTime ?? old.displayTime,
        clickTime: message.clickTime ?? old.clickTime,
        dismissTime: message.dismissTime ?? old.dismissTime,
      };
    }
    this.messages.set(message.id, message);
    let delta = 0;
    // Listed with the count: counted as the server has it, which a local read or
    // archive not yet committed there may change.
    if (counted) delta = Number(isUnread(message)) - Number(isUnread(incoming));
    else if (old) delta = Number(isUnread(message)) - Number(isUnread(old));
    else if (isUnread(message) && createdMs(message) > this.countedAt) delta = 1;
    if (delta) this.setCount(this.unread + delta);
    else this.changed(false);
  }

  /** Inbox messages, newest first: not archived, not expired. */
  inbox(): Message[] {
    const now = this.now();
    return [...this.messages.values()]
      .filter((m) => m.archiveTime === undefined && !isExpired(m, now))
      .sort((a, b) => createdMs(b) - createdMs(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  private setCount(n: number): void {
    const next = Math.max(0, n);
    const differs = next !== this.unread;
    this.unread = next;
    this.changed(differs);
  }
}
