// The Subscribe loop: keeps one DeliveryService.Subscribe stream open for the page's
// life. On any end or error it reconnects after an exponential backoff with full jitter
// (0.5 s doubling to 30 s), reset once a stream has delivered an item or stayed up 10 s.
// A watchdog aborts a stream that brought nothing (message or heartbeat) for 45 s; the
// server sends a heartbeat after 15 s of silence. UNAUTHENTICATED asks a function token
// for a fresh token; with a plain string token the loop stops and reports the error.

import { Code, ConnectError } from "@connectrpc/connect";
import type { DisplaySettings, Heartbeat, Message } from "../../gen/herald/delivery/v1/delivery_pb";
import { Backoff, sleep } from "./backoff";
import type { TokenSource } from "./token";
import type { DeliveryClient } from "./transport";

export type ConnectionState = "connecting" | "open" | "backoff" | "closed";

export interface StreamTiming {
  baseMs: number;
  capMs: number;
  healthyMs: number;
  watchdogMs: number;
}

export const STREAM_TIMING: StreamTiming = { baseMs: 500, capMs: 30_000, healthyMs: 10_000, watchdogMs: 45_000 };

export interface StreamHandlers {
  /** A message; `replayed` while the server replays what is pending (before the
   * heartbeat that ends the replay), false once messages arrive live. */
  message(message: Message, replayed: boolean): void;
  heartbeat(heartbeat: Heartbeat): void;
  /** The workspace's display settings, the first item of a stream. */
  settings(settings: DisplaySettings): void;
  state(state: ConnectionState): void;
  /** An error worth telling the app about; fatal when the loop stops because of it. */
  error(error: ConnectError, fatal: boolean): void;
}

export interface Subscription {
  stop(): void;
  /** Ends a backoff wait now (e.g. when the browser comes back online). */
  wake(): void;
}

export function subscribe(
  client: DeliveryClient,
  sessionId: string,
  tokens: TokenSource,
  on: StreamHandlers,
  timing: StreamTiming = STREAM_TIMING,
): Subscription {
  let stopped = false;
  let call: AbortController | undefined;
  let pause: AbortController | undefined;
  const backoff = new Backoff(timing.baseMs, timing.capMs);

  /** Runs one stream to its end; returns its error, or undefined for a clean end or a watchdog abort. */
  const runOnce = async (): Promise<unknown> => {
    const controller = (call = new AbortController());
    let timedOut = false;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    let healthy: ReturnType<typeof setTimeout> | undefined;
    const kick = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timing.watchdogMs);
    };
    let opened = false;
    // Open once the server answered: its headers, or (when a proxy or the transport holds
    // the headers back) the first item, which the server sends right after its replay.
    const open = () => {
      if (opened) return;
      opened = true;
      on.state("open");
      healthy = setTimeout(() => backoff.reset(), timing.healthyMs);
    };
    // The server replays pending messages first and ends the replay with a heartbeat.
    let replaying = true;
    try {
      kick();
      const stream = client.subscribe(
        { sessionId },
        {
          signal: controller.signal,
          timeoutMs: 0,
          onHeader: open,
        },
      );
      for await (const res of stream) {
        open();
        kick();
        backoff.reset();
        if (res.kind.case === "message") on.message(res.kind.value, replaying);
        else if (res.kind.case === "heartbeat") {
          replaying = false;
          on.heartbeat(res.kind.value);
        }
        else if (res.kind.case === "displaySettings") on.settings(res.kind.value);
      }
      return undefined;
    } catch (e) {
      return timedOut ? undefined : e;
    } finally {
      clearTimeout(watchdog);
      clearTimeout(healthy);
    }
  };

  void (async () => {
    while (!stopped) {
      on.state("connecting");
      const failure = await runOnce();
      if (stopped) break;
      if (failure !== undefined) {
        const err = ConnectError.from(failure);
        if (err.code === Code.Unauthenticated) {
          if (!tokens.refreshable) {
            on.error(err, true);
            break;
          }
          tokens.invalidate();
        } else if (!RETRYABLE.has(err.code)) {
          // PERMISSION_DENIED, INVALID_ARGUMENT and the like will not heal by themselves:
          // say so, but keep trying (the deployment may be fixed meanwhile).
          on.error(err, false);
        }
      }
      on.state("backoff");
      pause = new AbortController();
      await sleep(backoff.next(), pause.signal);
    }
    stopped = true;
    on.state("closed");
  })();

  return {
    stop: () => {
      stopped = true;
      call?.abort();
      pause?.abort();
    },
    wake: () => pause?.abort(),
  };
}

/** Stream errors that are expected now and then and only mean "reconnect". */
const RETRYABLE = new Set<Code>([
  Code.Canceled,
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.Internal,
  Code.Unavailable,
]);
