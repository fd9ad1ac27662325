// Which stream messages to act on. The server replays every undisplayed message on each
// connect and may send one twice, so the SDK remembers the ids it has seen (a bounded set,
// kept for the page's life) and skips messages that were already acted on or expired.

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { MessageState } from "../../gen/herald/common/v1/common_pb";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";

/** A set of strings that forgets its oldest entries beyond `max`. */
export class BoundedSet {
  private readonly items = new Set<string>();

  constructor(private readonly max: number) {}

  /** Adds id; true when it was not there yet. */
  add(id: string): boolean {
    if (this.items.has(id)) return false;
    this.items.add(id);
    if (this.items.size > this.max) {
      const oldest = this.items.values().next().value;
      if (oldest !== undefined) this.items.delete(oldest);
    }
    return true;
  }

  has(id: string): boolean {
    return this.items.has(id);
  }

  get size(): number {
    return this.items.size;
  }
}

/** Whether the message's expire_time is at or before nowMs (unset never expires). */
export function isExpired(message: Message, nowMs: number): boolean {
  return message.expireTime !== undefined && timestampMs(message.expireTime) <= nowMs;
}

/**
 * Whether a message may still pop up: not yet displayed, clicked, dismissed, read or
 * archived (state PENDING, DELIVERED or unset) and not expired.
 */
export function isShowable(message: Message, nowMs: number): boolean {
  return message.state < MessageState.DISPLAYED && !isExpired(message, nowMs);
}
