// Ties the pieces together for one start(): the Subscribe loop feeds new messages
// (deduplicated) to the store, the presenter and the app's listeners; what the user does
// is reported through UpdateMessageState (retried, idempotent on the server) and emitted.

import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { MessageState } from "../../gen/herald/common/v1/common_pb";
import { ActionKind, type Action } from "../../gen/herald/common/v1/content_pb";
import type { Heartbeat, Message } from "../../gen/herald/delivery/v1/delivery_pb";
import { durationMs } from "./time";
import { inAppContent, type DismissReason, type MessageHandlers } from "./content";
import { BoundedSet, isShowable } from "./dedupe";
import { Emitter } from "./emitter";
import { uuid } from "./ids";
import { eventContext, identify, track, type EventContextInit } from "./ingest";
import { DEFAULT_LABELS, type Labels } from "./labels";
import { deepLink, webUrl } from "./links";
import { muteCategory } from "./preferences";
import { Presenter } from "./presenter";
import { withRetry } from "./retry";
import { Snooze } from "./snooze";
import { MessageStore, isUnread } from "./store";
import { subscribe, type ConnectionState, type Subscription } from "./stream";
import { injectStyles } from "./styles";
import { TokenSource, type TokenOption } from "./token";
import { createClients, type Clients } from "./transport";

export interface HeraldOptions {
  /** The end-user token, or a function returning a fresh one (called again after UNAUTHENTICATED). */
  token: TokenOption;
  /** Delivery's gRPC-Web base URL, e.g. "http://127.0.0.1:50054". */
  deliveryUrl: string;
  /** Ingest's gRPC-Web base URL; needed by track() and identify(). */
  ingestUrl?: string;
  /** This page session's id (Subscribe.session_id and event context), at most 128 characters; random by default. */
  sessionId?: string;
  /** Where pop-ups are inserted; document.body by default. */
  root?: HTMLElement;
  /** Called for CUSTOM action buttons. */
  onAction?: (action: Action, message: Message) => void;
  /** Opens URL and DEEP_LINK actions; location.assign by default. */
  openUrl?: (url: string) => void;
  /** Least time between two pop-ups being shown, in ms; 0 by default. The workspace's
   * minimum in-app interval, which delivery sends when the stream opens, applies
   * anyway: this can only make the spacing longer. */
  minIntervalMs?: number;
  /** How long a tooltip waits for its target element, in ms; 5000 by default. */
  tooltipTimeoutMs?: number;
  /** Show a "Don't show these" button on pop-ups that have a category; false by default. */
  muteButton?: boolean;
  /** The SDK's words, for translation. */
  labels?: Partial<Labels>;
  /** Sent as the app_version of track() and identify() events. */
  appVersion?: string;
  /** A CSP nonce for the injected <style>. */
  styleNonce?: string;
}

export interface HeraldEvents {
  /** A new message arrived on the stream (any format, deduplicated). */
  message: Message;
  /** A pop-up was shown (DISPLAYED reported). */
  displayed: Message;
  /** An action button (action set) or a link in the body (action undefined) was clicked. */
  clicked: { message: Message; action?: Action };
  /** A pop-up was dismissed (DISMISSED reported). */
  dismissed: { message: Message; reason: DismissReason };
  /** The stream's state. */
  connection: ConnectionState;
  /** Something failed that the SDK could not retry away. */
  error: { operation: string; error: Error; message?: Message };
  /** A tooltip's target was not on the page within tooltipTimeoutMs; the message was not shown. */
  "tooltip-target-missing": { message: Message; selector: string };
  /** The unread count changed. */
  unread: number;
}

const REPORT_ATTEMPTS = 4;

export class Controller {
  readonly events = new Emitter<HeraldEvents>();
  readonly labels: Labels;
  readonly store: MessageStore;
  private readonly tokens: TokenSource;
  private readonly clients: Clients;
  private readonly seen = new BoundedSet(2_000);
  private readonly reported = new Set<string>();
  private readonly presenter: Presenter;
  private readonly snoozeState = new Snooze();
  private readonly context: EventContextInit;
  private readonly storeListeners = new Set<() => void>();
  private readonly subscription: Subscription;
  private loading: Promise<void> | undefined;
  private stopped = false;
  private readonly onOnline = () => this.subscription.wake();

  constructor(private readonly o: HeraldOptions) {
    if (!o || !o.token || !o.deliveryUrl) throw new TypeError("Herald.start: token and deliveryUrl are required");
    const sessionId = (o.sessionId ?? uuid()).slice(0, 128);
    this.labels = { ...DEFAULT_LABELS, ...o.labels };
    this.tokens = new TokenSource(o.token);
    this.clients = createClients(this.tokens, o.deliveryUrl, o.ingestUrl);
    this.context = eventContext(sessionId, o.appVersion);
    this.store = new MessageStore((unreadChanged) => {
      if (unreadChanged) this.events.emit("unread", this.store.unreadCount);
      for (const f of this.storeListeners) f();
    });
    injectStyles(o.styleNonce);
    this.presenter = new Presenter({
      root: o.root ?? document.body,
      labels: this.labels,
      minIntervalMs: nonNegative(o.minIntervalMs, 0),
      tooltipTimeoutMs: nonNegative(o.tooltipTimeoutMs, 5_000),
      snooze: this.snoozeState,
      now: () => this.store.now(),
      handlers: (m) => this.handlers(m, true),
      displayed: (m) => {
        void this.report(m, MessageState.DISPLAYED);
        this.events.emit("displayed", m);
      },
      targetMissing: (message, selector) => this.events.emit("tooltip-target-missing", { message, selector }),
      revalidate: (ids) => this.revalidate(ids),
    });
    window.addEventListener("online", this.onOnline);
    // Opened on the next microtask, so listeners added right after start() see "connecting".
    this.subscription = deferred(() => subscribe(this.clients.stream, sessionId, this.tokens, {
      message: (m, replayed) => this.receive(m, replayed),
      heartbeat: (h) => this.heartbeat(h),
      settings: (s) => this.presenter.setWorkspaceInterval(durationMs(s.minInAppInterval)),
      state: (s) => this.events.emit("connection", s),
      error: (error, fatal) => this.events.emit("error", { operation: fatal ? "subscribe (stopped)" : "subscribe", error }),
    }));
  }

  private receive(m: Message, replayed = false): void {
    if (!inAppContent(m) || !this.seen.add(m.id)) return;
    this.store.upsert(m);
    if (!isShowable(m, this.store.now())) return;
    this.events.emit("message", m);
    this.presenter.enqueue(m, replayed);
  }

  private heartbeat(h: Heartbeat): void {
    if (!h.serverTime) return;
    const serverMs = timestampMs(h.serverTime);
    this.store.skewMs = serverMs - Date.now();
    this.store.setUnread(h.unreadCount, serverMs);
  }

  /** What the buttons of a message do; `popup` closes the pop-up on actions. */
  handlers(m: Message, popup: boolean): MessageHandlers {
    return {
      action: (a) => this.action(m, a, popup),
      dismiss: (reason) => this.dismiss(m, reason),
      link: () => {
        void this.report(m, MessageState.CLICKED);
        this.events.emit("clicked", { message: m });
      },
      mute:
        popup && this.o.muteButton
          ? () => {
              this.mute(m.category).catch(() => {}); // reported as an "error" event
              this.dismiss(m, "mute");
            }
          : undefined,
    };
  }

  action(m: Message, a: Action, popup: boolean): void {
    if (a.kind === ActionKind.DISMISS) {
      if (popup) this.dismiss(m, "action");
      return;
    }
    const url = a.kind === ActionKind.URL ? webUrl(a.url) : a.kind === ActionKind.DEEP_LINK ? deepLink(a.url) : undefined;
    if ((a.kind === ActionKind.URL || a.kind === ActionKind.DEEP_LINK) && !url) {
      this.events.emit("error", { operation: "action", error: new Error(`Herald: refused to open ${JSON.stringify(a.url)}`), message: m });
      return;
    }
    void this.report(m, MessageState.CLICKED, a.id);
    this.presenter.drop((q) => q.id === m.id);
    this.events.emit("clicked", { message: m, action: a });
    if (popup) this.presenter.close(m.id);
    if (url) (this.o.openUrl ?? ((u: string) => location.assign(u)))(url);
    else if (a.kind === ActionKind.CUSTOM) this.o.onAction?.(a, m);
  }

  dismiss(m: Message, reason: DismissReason): void {
    void this.report(m, MessageState.DISMISSED);
    this.events.emit("dismissed", { message: m, reason });
    this.presenter.close(m.id);
  }

  /** The inbox opened a message: READ, shown at once as read. */
  markRead(m: Message): void {
    const current = this.store.get(m.id) ?? m;
    if (current.readTime) return;
    this.store.upsert({ ...current, readTime: timestampFromMs(Date.now()) });
    this.presenter.drop((q) => q.id === m.id);
    void this.report(m, MessageState.READ);
  }

  archive(m: Message): void {
    const current = this.store.get(m.id) ?? m;
    this.store.upsert({ ...current, archiveTime: timestampFromMs(Date.now()) });
    this.presenter.drop((q) => q.id === m.id);
    void this.report(m, MessageState.ARCHIVED);
  }

  /** Reports an interaction, retrying transient failures; the answer updates the store. */
  async report(m: Message, state: MessageState, actionId = ""): Promise<void> {
    const key = `${m.id}\n${state}\n${actionId}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    try {
      const res = await withRetry(
        () => this.clients.delivery.updateMessageState({ messageId: m.id, state, actionId }),
        { attempts: REPORT_ATTEMPTS, tokens: this.tokens },
      );
      if (res.message && !this.stopped) this.store.upsert(res.message);
    } catch (e) {
      this.reported.delete(key);
      this.events.emit("error", { operation: `report ${MessageState[state]}`, error: asError(e), message: m });
    }
  }

  /** Loads the first inbox page (again), or the next one with `more`. */
  loadInbox(more = false): Promise<void> {
    if (this.loading) return this.loading;
    const pageToken = more ? this.store.nextPageToken : "";
    if (pageToken === undefined || (more && !pageToken)) return Promise.resolve();
    this.loading = withRetry(() => this.clients.delivery.listInbox({ pageSize: 20, pageToken }), {
      attempts: 3,
      tokens: this.tokens,
    })
      .then((res) => {
        this.store.nextPageToken = res.nextPageToken;
        this.store.setUnread(res.unreadCount, this.store.now());
        for (const m of res.messages) this.store.upsert(m, true);
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async revalidate(ids: string[]): Promise<Set<string>> {
    const res = await this.clients.delivery.listInbox({ pageSize: 100 });
    const wanted = new Set(ids);
    const gone = new Set<string>();
    for (const m of res.messages) {
      if (wanted.has(m.id) && (!isShowable(m, this.store.now()) || !isUnread(m))) gone.add(m.id);
    }
    return gone;
  }

  onStoreChange(f: () => void): () => void {
    this.storeListeners.add(f);
    return () => this.storeListeners.delete(f);
  }

  snooze(ms: number): void {
    this.snoozeState.set(ms > 0 && ms < 1e13 ? Date.now() + ms : 0);
    this.presenter.pump();
  }

  get snoozedUntil(): number {
    return this.snoozeState.untilMs > Date.now() ? this.snoozeState.untilMs : 0;
  }

  async mute(category: string): Promise<void> {
    try {
      await muteCategory(this.clients.delivery, this.tokens, category);
      this.presenter.drop((m) => m.category === category);
    } catch (e) {
      this.events.emit("error", { operation: "mute", error: asError(e) });
      throw e;
    }
  }

  track(name: string, properties?: object): Promise<{ duplicate: boolean }> {
    if (!this.clients.ingest) return Promise.reject(new Error("Herald: track() needs ingestUrl"));
    return track(this.clients.ingest, this.tokens, this.context, name, properties);
  }

  identify(traits: object): Promise<{ duplicate: boolean }> {
    if (!this.clients.ingest) return Promise.reject(new Error("Herald: identify() needs ingestUrl"));
    return identify(this.clients.ingest, this.tokens, this.context, traits);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    this.subscription.stop();
    this.presenter.stop();
    this.storeListeners.clear();
  }
}

/** A Subscription started on the next microtask (and never, if stopped before). */
function deferred(start: () => Subscription): Subscription {
  let sub: Subscription | undefined;
  let stopped = false;
  queueMicrotask(() => {
    if (!stopped) sub = start();
  });
  return {
    stop: () => {
      stopped = true;
      sub?.stop();
    },
    wake: () => sub?.wake(),
  };
}

function nonNegative(v: number | undefined, fallback: number): number {
  return typeof v === "number" && v >= 0 && Number.isFinite(v) ? v : fallback;
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
