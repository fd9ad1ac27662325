// The gRPC-Web clients, the Subscribe loop and the retried unary calls against a fake
// fetch that answers in the gRPC-Web binary format, through the same binary-only build
// as the bundles.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { InAppFormat } from "../../gen/herald/common/v1/content_pb.ts";
import { MessageState } from "../../gen/herald/common/v1/common_pb.ts";
import {
  SubscribeRequestSchema,
  SubscribeResponseSchema,
  UpdateMessageStateRequestSchema,
  UpdateMessageStateResponseSchema,
} from "../../gen/herald/delivery/v1/delivery_pb.ts";
import { TrackRequestSchema, TrackResponseSchema } from "../../gen/herald/ingest/v1/ingest_pb.ts";
import { track } from "../src/ingest.ts";
import { isTransient, withRetry } from "../src/retry.ts";
import { subscribe } from "../src/stream.ts";
import { TokenSource } from "../src/token.ts";
import { createClients } from "../src/transport.ts";

function frame(flag, bytes) {
  const out = new Uint8Array(5 + bytes.length);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}
const msg = (schema, init) => frame(0, toBinary(schema, create(schema, init)));
const trailer = (status, message = "") =>
  frame(0x80, new TextEncoder().encode(`grpc-status: ${status}\r\ngrpc-message: ${encodeURIComponent(message)}\r\n`));

/** Installs a fake fetch answering each call with the next script entry: frames, and whether the body stays open. */
function fakeFetch(script) {
  const calls = [];
  globalThis.fetch = async (url, init) => {
    if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
    const entry = script[Math.min(calls.length, script.length - 1)];
    calls.push({ url: String(url), init, headers: new Headers(init.headers), body: init.body.slice(5) });
    const body = new ReadableStream({
      start(c) {
        for (const f of entry.frames) c.enqueue(f);
        if (!entry.hang) c.close();
        init.signal?.addEventListener("abort", () => {
          try {
            c.error(new DOMException("aborted", "AbortError"));
          } catch {}
        });
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "application/grpc-web+proto" } });
  };
  return calls;
}

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

const until = async (cond, ms = 2_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
};

const FAST = { baseMs: 1, capMs: 5, healthyMs: 1_000, watchdogMs: 2_000 };

function recorder() {
  const r = { messages: [], replayed: [], heartbeats: [], settings: [], states: [], errors: [] };
  r.on = {
    message: (m, replayed) => {
      r.messages.push(m);
      r.replayed.push(replayed);
    },
    heartbeat: (h) => r.heartbeats.push(h),
    settings: (s) => r.settings.push(s),
    state: (s) => r.states.push(s),
    error: (e, fatal) => r.errors.push({ code: e.code, fatal }),
  };
  return r;
}

test("Subscribe: decodes messages and heartbeats, sends the token, reconnects when the stream ends", async () => {
  const message = {
    id: "msg_1",
    state: MessageState.DELIVERED,
    category: "tips",
    content: { body: { case: "inApp", value: { format: InAppFormat.MODAL, title: "Hi", customData: { a: 1, b: ["x"] } } } },
  };
  const calls = fakeFetch([
    {
      frames: [
        msg(SubscribeResponseSchema, { kind: { case: "message", value: message } }),
        msg(SubscribeResponseSchema, { kind: { case: "heartbeat", value: { serverTime: timestampFromMs(5_000), unreadCount: 3 } } }),
        trailer(0),
      ],
    },
    { frames: [], hang: true },
  ]);
  const tokens = new TokenSource("tok");
  const clients = createClients(tokens, "http://delivery.test");
  const r = recorder();
  const sub = subscribe(clients.stream, "session-1", tokens, r.on, FAST);
  await until(() => calls.length === 2);
  sub.stop();
  await until(() => r.states.at(-1) === "closed");

  assert.equal(calls[0].url, "http://delivery.test/herald.delivery.v1.DeliveryService/Subscribe");
  assert.equal(calls[0].headers.get("authorization"), "Bearer tok");
  assert.equal(calls[0].headers.get("content-type"), "application/grpc-web+proto");
  assert.equal(fromBinary(SubscribeRequestSchema, calls[0].body).sessionId, "session-1");
  assert.equal(r.messages.length, 1);
  assert.equal(r.messages[0].id, "msg_1");
  assert.equal(r.messages[0].content.body.value.title, "Hi");
  assert.deepEqual(r.messages[0].content.body.value.customData, { a: 1, b: ["x"] });
  assert.equal(r.heartbeats[0].unreadCount, 3);
  assert.deepEqual(r.states, ["connecting", "open", "backoff", "connecting", "open", "closed"]);
  assert.deepEqual(r.errors, []);
});

test("Subscribe: display settings come first; messages before the first heartbeat are the replay", async () => {
  const message = (id) => ({
    id,
    state: MessageState.DELIVERED,
    content: { body: { case: "inApp", value: { format: InAppFormat.BANNER, title: id } } },
  });
  const calls = fakeFetch([
    {
      frames: [
        msg(SubscribeResponseSchema, { kind: { case: "displaySettings", value: { minInAppInterval: { seconds: 30n, nanos: 0 } } } }),
        msg(SubscribeResponseSchema, { kind: { case: "message", value: message("msg_replayed") } }),
        msg(SubscribeResponseSchema, { kind: { case: "heartbeat", value: { unreadCount: 1 } } }),
        msg(SubscribeResponseSchema, { kind: { case: "message", value: message("msg_live") } }),
      ],
      hang: true,
    },
  ]);
  const tokens = new TokenSource("tok");
  const r = recorder();
  const sub = subscribe(createClients(tokens, "http://delivery.test").stream, "s", tokens, r.on, FAST);
  await until(() => r.messages.length === 2);
  sub.stop();
  assert.equal(calls.length, 1);
  assert.equal(r.settings.length, 1);
  assert.equal(r.settings[0].minInAppInterval.seconds, 30n);
  assert.deepEqual(r.messages.map((m) => m.id), ["msg_replayed", "msg_live"]);
  assert.deepEqual(r.replayed, [true, false]);
});

test("Subscribe: a refused plain token stops the loop with an error", async () => {
  const calls = fakeFetch([{ frames: [trailer(Code.Unauthenticated, "token expired")] }]);
  const tokens = new TokenSource("old");
  const r = recorder();
  subscribe(createClients(tokens, "http://d").stream, "", tokens, r.on, FAST);
  await until(() => r.states.at(-1) === "closed");
  assert.equal(calls.length, 1);
  assert.deepEqual(r.errors, [{ code: Code.Unauthenticated, fatal: true }]);
});

test("Subscribe: a token function is asked for a fresh token after UNAUTHENTICATED", async () => {
  const calls = fakeFetch([{ frames: [trailer(Code.Unauthenticated)] }, { frames: [], hang: true }]);
  let n = 0;
  const tokens = new TokenSource(async () => `t${++n}`);
  const r = recorder();
  const sub = subscribe(createClients(tokens, "http://d").stream, "", tokens, r.on, FAST);
  await until(() => calls.length === 2);
  sub.stop();
  assert.equal(calls[0].headers.get("authorization"), "Bearer t1");
  assert.equal(calls[1].headers.get("authorization"), "Bearer t2");
  assert.deepEqual(r.errors, []);
});

test("Subscribe: the watchdog reconnects a stream that stays silent", async () => {
  const calls = fakeFetch([{ frames: [], hang: true }]);
  const tokens = new TokenSource("tok");
  const r = recorder();
  const sub = subscribe(createClients(tokens, "http://d").stream, "", tokens, r.on, { ...FAST, watchdogMs: 40 });
  await until(() => calls.length >= 3);
  sub.stop();
  await until(() => r.states.at(-1) === "closed");
  assert.ok(calls[0].init.signal.aborted);
  assert.deepEqual(r.errors, []);
});

test("Subscribe: PERMISSION_DENIED is reported but the loop goes on", async () => {
  const calls = fakeFetch([{ frames: [trailer(Code.PermissionDenied)] }, { frames: [], hang: true }]);
  const tokens = new TokenSource("tok");
  const r = recorder();
  const sub = subscribe(createClients(tokens, "http://d").stream, "", tokens, r.on, FAST);
  await until(() => calls.length === 2);
  sub.stop();
  assert.deepEqual(r.errors, [{ code: Code.PermissionDenied, fatal: false }]);
});

test("unary calls carry a 10 s deadline and are sent with keepalive", async () => {
  const calls = fakeFetch([{ frames: [msg(UpdateMessageStateResponseSchema, {}), trailer(0)] }]);
  const tokens = new TokenSource("tok");
  const { delivery } = createClients(tokens, "http://d");
  await delivery.updateMessageState({ messageId: "msg_1", state: MessageState.CLICKED, actionId: "tour" });
  assert.equal(calls[0].headers.get("grpc-timeout"), "10000m");
  assert.equal(calls[0].init.keepalive, true);
  const req = fromBinary(UpdateMessageStateRequestSchema, calls[0].body);
  assert.deepEqual([req.messageId, req.state, req.actionId], ["msg_1", MessageState.CLICKED, "tour"]);
});

test("Track: retried on UNAVAILABLE with the same message_id, user_id left to the server", async () => {
  const calls = fakeFetch([
    { frames: [trailer(Code.Unavailable, "restarting")] },
    { frames: [trailer(Code.DeadlineExceeded)] },
    { frames: [msg(TrackResponseSchema, { duplicate: true }), trailer(0)] },
  ]);
  const tokens = new TokenSource("user-token");
  const { ingest } = createClients(tokens, "http://d", "http://ingest.test");
  const res = await track(ingest, tokens, { sessionId: "s1", locale: "fr-FR" }, "signed_up", { plan: "pro", n: 2 });
  assert.deepEqual(res, { duplicate: true });
  assert.equal(calls.length, 3);
  const events = calls.map((c) => fromBinary(TrackRequestSchema, c.body).event);
  assert.equal(calls[0].url, "http://ingest.test/herald.ingest.v1.IngestService/Track");
  assert.equal(calls[0].headers.get("authorization"), "Bearer user-token");
  assert.match(events[0].messageId, /^[0-9a-f-]{36}$/);
  assert.ok(events.every((e) => e.messageId === events[0].messageId));
  assert.equal(events[0].userId, "");
  assert.equal(events[0].name, "signed_up");
  assert.deepEqual(events[0].properties, { plan: "pro", n: 2 });
  assert.equal(events[0].context.sessionId, "s1");
});

test("Track: INVALID_ARGUMENT and RESOURCE_EXHAUSTED (the per-user rate limit) are not retried", async () => {
  for (const code of [Code.InvalidArgument, Code.ResourceExhausted]) {
    const calls = fakeFetch([{ frames: [trailer(code, "no")] }]);
    const tokens = new TokenSource("t");
    const { ingest } = createClients(tokens, "http://d", "http://i");
    await assert.rejects(track(ingest, tokens, {}, "$x"), (e) => e instanceof ConnectError && e.code === code);
    assert.equal(calls.length, 1, Code[code]);
  }
});

test("which errors are retried", async () => {
  for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted]) {
    assert.equal(isTransient(new ConnectError("x", code)), true, Code[code]);
  }
  for (const code of [Code.InvalidArgument, Code.NotFound, Code.PermissionDenied, Code.Unauthenticated, Code.Internal, Code.Unknown]) {
    assert.equal(isTransient(new ConnectError("x", code)), false, Code[code]);
  }
  // A request that never got an answer: fetch failed.
  assert.equal(isTransient(ConnectError.from(new TypeError("Failed to fetch"))), true);
  // Attempts run out.
  let n = 0;
  await assert.rejects(
    withRetry(async () => { n++; throw new ConnectError("down", Code.Unavailable); }, { attempts: 3, tokens: new TokenSource("t") }),
    /down/,
  );
  assert.equal(n, 3);
});
