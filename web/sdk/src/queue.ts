// Which pop-up to show next. Waiting pop-ups are ordered by priority (higher first), then
// by arrival. Each occupies a slot while on screen: one modal at a time, one banner per
// edge, one tooltip per target; a pop-up whose slot is busy, or that is not ready (a
// tooltip whose target is not on the page yet), lets the next one go first. Between two
// pop-ups at least minIntervalMs pass, and none shows while snoozed.

export interface Queued<T> {
  item: T;
  priority: number;
  slot: string;
  seq: number;
}

export class PopupQueue<T> {
  private items: Queued<T>[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  push(item: T, priority: number, slot: string): void {
    this.items.push({ item, priority, slot, seq: this.seq++ });
    this.items.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
  }

  /** Removes and returns the items matching pred. */
  remove(pred: (item: T) => boolean): T[] {
    const out = this.items.filter((q) => pred(q.item));
    this.items = this.items.filter((q) => !pred(q.item));
    return out.map((q) => q.item);
  }

  /** The items in showing order. */
  list(): T[] {
    return this.items.map((q) => q.item);
  }

  /** Removes and returns the first item whose slot is free and that is ready. */
  take(busy: (slot: string) => boolean, ready: (item: T) => boolean): T | undefined {
    const i = this.items.findIndex((q) => !busy(q.slot) && ready(q.item));
    if (i < 0) return undefined;
    return this.items.splice(i, 1)[0]!.item;
  }
}

/** The earliest time (ms) the next pop-up may show. */
export function nextShowTime(lastShownMs: number, minIntervalMs: number, snoozeUntilMs: number): number {
  return Math.max(lastShownMs + minIntervalMs, snoozeUntilMs);
}
