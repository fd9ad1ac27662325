// gRPC-Web clients of DeliveryService and IngestService. Every request carries the
// user's token; every unary call has a 10 s deadline. Unary requests are sent with
// `keepalive` so a report made just before the page navigates away (a URL button) still
// reaches the server.

import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { DeliveryService } from "../../gen/herald/delivery/v1/delivery_pb";
import { IngestService } from "../../gen/herald/ingest/v1/ingest_pb";
import type { TokenSource } from "./token";

export const UNARY_TIMEOUT_MS = 10_000;

export type DeliveryClient = Client<typeof DeliveryService>;
export type IngestClient = Client<typeof IngestService>;

export interface Clients {
  /** For Subscribe: no deadline, aborted by the stream's own watchdog. */
  stream: DeliveryClient;
  delivery: DeliveryClient;
  ingest?: IngestClient;
}

// A browser that refuses a keepalive request (too old for keepalive with a CORS
// preflight, or over the 64 KiB in-flight budget) gets the same request without it.
const keepaliveFetch: typeof fetch = async (input, init) => {
  try {
    return await fetch(input, { ...init, keepalive: true });
  } catch (e) {
    if (!(e instanceof TypeError) || init?.signal?.aborted) throw e;
    return fetch(input, init);
  }
};

export function createClients(tokens: TokenSource, deliveryUrl: string, ingestUrl?: string): Clients {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${await tokens.get()}`);
    return next(req);
  };
  const unary = (baseUrl: string) =>
    createGrpcWebTransport({
      baseUrl,
      interceptors: [auth],
      defaultTimeoutMs: UNARY_TIMEOUT_MS,
      fetch: keepaliveFetch,
    });
  return {
    stream: createClient(DeliveryService, createGrpcWebTransport({ baseUrl: deliveryUrl, interceptors: [auth] })),
    delivery: createClient(DeliveryService, unary(deliveryUrl)),
    ingest: ingestUrl ? createClient(IngestService, unary(ingestUrl)) : undefined,
  };
}
