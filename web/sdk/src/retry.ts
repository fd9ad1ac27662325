// Retrying unary calls. Every call Herald's SDK retries is idempotent on the server
// (UpdateMessageState) or deduplicated by a client-chosen id that stays the same across
// attempts (Track and Identify message_id), so a retry after an unknown outcome is safe.

import { Code, ConnectError } from "@connectrpc/connect";
import { Backoff, sleep } from "./backoff";
import type { TokenSource } from "./token";

/**
 * Errors worth another attempt: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (the
 * server sheds load with it), and a request that never got an answer (fetch failed:
 * connect reports it as UNKNOWN caused by a TypeError).
 */
export function isTransient(e: unknown): boolean {
  const err = ConnectError.from(e);
  switch (err.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
      return true;
    case Code.Unknown:
      return err.cause instanceof TypeError;
    default:
      return false;
  }
}

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Which errors to retry; isTransient by default. */
  retryable?: (e: unknown) => boolean;
  tokens: TokenSource;
  signal?: AbortSignal;
  backoff?: Backoff;
}

/**
 * Calls `call` until it succeeds, fails with a non-transient error, or runs out of
 * attempts. UNAUTHENTICATED with a function token fetches a fresh token and tries once
 * more.
 */
export async function withRetry<T>(call: () => Promise<T>, options: RetryOptions): Promise<T> {
  const backoff = options.backoff ?? new Backoff(250, 5_000);
  let refreshed = false;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      const code = ConnectError.from(e).code;
      if (code === Code.Unauthenticated && options.tokens.refreshable && !refreshed) {
        refreshed = true;
        options.tokens.invalidate();
      } else if (!(options.retryable ?? isTransient)(e) || attempt >= options.attempts || options.signal?.aborted) {
        throw e;
      } else {
        await sleep(backoff.next(), options.signal);
        if (options.signal?.aborted) throw e;
      }
    }
  }
}
