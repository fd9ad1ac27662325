// Track and Identify through IngestService with the end-user token. user_id is left
// empty: the server fills in the token's user. Each call gets a fresh message_id
// (crypto.randomUUID) that stays the same across its retries, so a retry after a
// timeout is deduplicated by the server instead of counted twice.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventContextSchema } from "../../gen/herald/common/v1/event_pb";
import { uuid } from "./ids";
import { isTransient, withRetry } from "./retry";
import { toJsonObject } from "./struct";
import type { TokenSource } from "./token";
import type { IngestClient } from "./transport";

export type EventContextInit = MessageInitShape<typeof EventContextSchema>;

/** The context sent with every event: session, locale, time zone, user agent, app version. */
export function eventContext(sessionId: string, appVersion = ""): EventContextInit {
  let timeZone = "";
  try {
    timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone ?? "";
  } catch {
    // no Intl time zone support
  }
  return {
    sessionId,
    locale: navigator.language ?? "",
    timeZone: timeZone === "Etc/Unknown" ? "" : timeZone,
    userAgent: navigator.userAgent.slice(0, 512),
    appVersion,
  };
}

const ATTEMPTS = 5;

/**
 * Track and Identify retry UNAVAILABLE, DEADLINE_EXCEEDED and unanswered requests, but
 * not RESOURCE_EXHAUSTED: with a user token that is the per-user rate limit, where every
 * call counts, so an early retry would only use up more of it.
 */
export function retryableIngest(e: unknown): boolean {
  return isTransient(e) && ConnectError.from(e).code !== Code.ResourceExhausted;
}

export async function track(
  client: IngestClient,
  tokens: TokenSource,
  context: EventContextInit,
  name: string,
  properties?: object,
): Promise<{ duplicate: boolean }> {
  const event = {
    messageId: uuid(),
    name,
    properties: properties === undefined ? undefined : toJsonObject(properties),
    context,
  };
  const res = await withRetry(() => client.track({ event }), { attempts: ATTEMPTS, tokens, retryable: retryableIngest });
  return { duplicate: res.duplicate };
}

export async function identify(
  client: IngestClient,
  tokens: TokenSource,
  context: EventContextInit,
  traits: object,
): Promise<{ duplicate: boolean }> {
  const identity = { messageId: uuid(), traits: toJsonObject(traits), context };
  const res = await withRetry(() => client.identify({ identity }), { attempts: ATTEMPTS, tokens, retryable: retryableIngest });
  return { duplicate: res.duplicate };
}
