// Puts pop-ups (banners, modals, tooltips) on the page, one after another through the
// PopupQueue: none while snoozed or while the tab is hidden, at least minIntervalMs
// apart (and the workspace's minimum in-app interval apart while messages of a replay
// wait: trigger spaces what it sends live, so only what arrives together on a reconnect
// needs spacing here), one modal at a time. A tooltip waits up to tooltipTimeoutMs (counted from the
// moment it could otherwise be shown) for its target to be on the page, watching the
// DOM with a MutationObserver; if the target does not come it is dropped and reported
// through targetMissing, never shown elsewhere. Pop-ups held by a snooze are checked
// again (revalidate) before they show, in case they were acted on meanwhile.

import { InAppFormat } from "../../gen/herald/common/v1/content_pb";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
import { bannerSlot, showBanner, type Shown } from "./banner";
import { inAppContent, type MessageHandlers } from "./content";
import { isExpired } from "./dedupe";
import type { Labels } from "./labels";
import { showModal } from "./modal";
import { nextShowTime, PopupQueue } from "./queue";
import type { Snooze } from "./snooze";
import { findTarget, showTooltip } from "./tooltip";

export interface PresenterOptions {
  root: HTMLElement;
  labels: Labels;
  minIntervalMs: number;
  tooltipTimeoutMs: number;
  snooze: Snooze;
  /** The server-corrected clock, for expire_time. */
  now(): number;
  handlers(message: Message): MessageHandlers;
  displayed(message: Message): void;
  targetMissing(message: Message, selector: string): void;
  /** Of the given messages, the ids no longer to show (already acted on elsewhere). */
  revalidate(ids: string[]): Promise<Set<string>>;
}

/** The formats that pop up. */
export function popsUp(message: Message): boolean {
  const f = inAppContent(message)?.format;
  return f === InAppFormat.BANNER || f === InAppFormat.MODAL || f === InAppFormat.TOOLTIP;
}

function slotOf(message: Message): string {
  const content = inAppContent(message)!;
  if (content.format === InAppFormat.MODAL) return "modal";
  if (content.format === InAppFormat.TOOLTIP) return `tooltip:${content.tooltipTarget?.selector ?? ""}`;
  return bannerSlot(content);
}

export class Presenter {
  private readonly queue = new PopupQueue<Message>();
  private readonly onScreen = new Map<string, { slot: string; shown: Shown }>();
  /** Tooltips waiting for their target: id → local time (ms) they give up. */
  private readonly waiting = new Map<string, number>();
  private lastShownMs = -Infinity;
  /** The workspace's minimum in-app interval, as delivery sent it: it spaces replayed
   * messages (trigger already spaces what it sends live, and lets exempt campaigns
   * through, so live messages are not held by it here). */
  private workspaceIntervalMs = 0;
  /** Queued messages that came with a replay. */
  private readonly replayed = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private observer: MutationObserver | undefined;
  private observed = false;
  private heldBySnooze = false;
  private revalidating = false;
  private stopped = false;
  private readonly onVisibility = () => this.pump();

  constructor(private readonly o: PresenterOptions) {
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  enqueue(message: Message, replayed = false): void {
    if (!popsUp(message) || this.onScreen.has(message.id)) return;
    if (replayed) this.replayed.add(message.id);
    this.queue.remove((m) => m.id === message.id);
    this.queue.push(message, message.priority, slotOf(message));
    this.pump();
  }

  /** Spaces replayed pop-ups by the workspace's minimum in-app interval (from delivery). */
  setWorkspaceInterval(ms: number): void {
    this.workspaceIntervalMs = Math.max(0, ms);
    this.pump();
  }

  /** Takes a message off the page (no report) and lets the next one come. */
  close(id: string): void {
    const entry = this.onScreen.get(id);
    if (!entry) return;
    this.onScreen.delete(id);
    entry.shown.close();
    this.pump();
  }

  isOnScreen(id: string): boolean {
    return this.onScreen.has(id);
  }

  /** Drops waiting pop-ups matching pred (not the ones on screen). */
  drop(pred: (message: Message) => boolean): void {
    for (const m of this.queue.remove(pred)) {
      this.waiting.delete(m.id);
      this.replayed.delete(m.id);
    }
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.observer?.disconnect();
    document.removeEventListener("visibilitychange", this.onVisibility);
    for (const { shown } of this.onScreen.values()) shown.close();
    this.onScreen.clear();
    this.queue.remove(() => true);
  }

  pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.revalidating || document.visibilityState === "hidden") return;
    const now = Date.now();
    for (const m of this.queue.remove((m) => isExpired(m, this.o.now()))) this.waiting.delete(m.id);
    if (!this.queue.size) return this.watch(false);

    const spaced = this.queue.list().some((m) => this.replayed.has(m.id));
    const interval = Math.max(this.o.minIntervalMs, spaced ? this.workspaceIntervalMs : 0);
    const at = nextShowTime(this.lastShownMs, interval, this.o.snooze.untilMs);
    if (at > now) {
      if (this.o.snooze.untilMs > now) this.heldBySnooze = true;
      this.timer = setTimeout(() => this.pump(), at - now);
      return;
    }
    if (this.heldBySnooze) {
      this.heldBySnooze = false;
      this.revalidating = true;
      void this.o
        .revalidate(this.queue.list().map((m) => m.id))
        .catch(() => new Set<string>())
        .then((gone) => {
          this.revalidating = false;
          this.drop((m) => gone.has(m.id));
        });
      return;
    }

    const targets = new Map<string, Element>();
    const missing: Message[] = [];
    const next = this.queue.take(
      (slot) => [...this.onScreen.values()].some((e) => e.slot === slot),
      (m) => {
        const content = inAppContent(m)!;
        if (content.format !== InAppFormat.TOOLTIP) return true;
        let target: Element | undefined;
        try {
          target = content.tooltipTarget?.selector ? findTarget(content.tooltipTarget.selector) : undefined;
        } catch {
          // An invalid selector never matches.
        }
        if (target) {
          targets.set(m.id, target);
          return true;
        }
        const deadline = this.waiting.get(m.id);
        if (deadline === undefined) this.waiting.set(m.id, now + this.o.tooltipTimeoutMs);
        else if (deadline <= now) missing.push(m);
        return false;
      },
    );
    for (const m of missing) {
      this.queue.remove((q) => q.id === m.id);
      this.waiting.delete(m.id);
      this.o.targetMissing(m, inAppContent(m)?.tooltipTarget?.selector ?? "");
    }
    if (next) {
      this.waiting.delete(next.id);
      this.show(next, targets.get(next.id));
      return this.pump();
    }
    // Nothing can show now: wake for the first tooltip deadline, or a DOM change.
    this.watch(this.waiting.size > 0);
    if (this.waiting.size) {
      const first = Math.min(...this.waiting.values());
      this.timer = setTimeout(() => this.pump(), Math.max(0, first - now));
    }
  }

  private watch(on: boolean): void {
    if (on && !this.observed) {
      let pending = false;
      this.observer ??= new MutationObserver(() => {
        if (pending) return;
        pending = true;
        setTimeout(() => {
          pending = false;
          this.pump();
        }, 50);
      });
      this.observer.observe(document.documentElement, { childList: true, subtree: true, attributes: true });
      this.observed = true;
    } else if (!on && this.observed) {
      this.observer?.disconnect();
      this.observed = false;
    }
  }

  private show(message: Message, target: Element | undefined): void {
    const content = inAppContent(message)!;
    const { root, labels } = this.o;
    const on = this.o.handlers(message);
    const displayed = () => this.o.displayed(message);
    let shown: Shown;
    if (content.format === InAppFormat.MODAL) shown = showModal(root, message, content, labels, on, displayed);
    else if (content.format === InAppFormat.TOOLTIP && target)
      shown = showTooltip(root, message, content, labels, on, displayed, target);
    else shown = showBanner(root, message, content, labels, on, displayed);
    this.onScreen.set(message.id, { slot: slotOf(message), shown });
    this.replayed.delete(message.id);
    this.lastShownMs = Date.now();
  }
}
