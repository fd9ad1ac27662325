// Queue order and spacing, tooltip placement, action URLs, tokens and the unread count.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { MessageSchema } from "../../gen/herald/delivery/v1/delivery_pb.ts";
import { deepLink, webUrl } from "../src/links.ts";
import { place, room } from "../src/placement.ts";
import { nextShowTime, PopupQueue } from "../src/queue.ts";
import { MessageStore } from "../src/store.ts";
import { TokenSource } from "../src/token.ts";

test("pop-ups go by priority, then arrival; a busy slot or an unready item lets the next go", () => {
  const q = new PopupQueue();
  q.push("low-1", 0, "banner-top");
  q.push("high", 5, "modal");
  q.push("low-2", 0, "modal");
  q.push("mid", 1, "tooltip:#a");
  assert.deepEqual(q.list(), ["high", "mid", "low-1", "low-2"]);
  const none = () => false;
  const all = () => true;
  assert.equal(q.take(none, all), "high");
  // The modal slot is taken: the other modal waits, the rest go by.
  const busy = (slot) => slot === "modal";
  assert.equal(q.take(busy, (item) => item !== "mid"), "low-1");
  assert.equal(q.take(busy, all), "mid");
  assert.equal(q.take(busy, all), undefined);
  assert.equal(q.take(none, all), "low-2");
  assert.equal(q.size, 0);
  q.push("a", 0, "x");
  q.push("b", 0, "x");
  assert.deepEqual(q.remove((i) => i === "a"), ["a"]);
  assert.deepEqual(q.list(), ["b"]);
});

test("the next pop-up waits for the minimum interval and the snooze", () => {
  assert.equal(nextShowTime(-Infinity, 0, 0), 0);
  assert.equal(nextShowTime(1_000, 0, 0), 1_000);
  assert.equal(nextShowTime(1_000, 5_000, 0), 6_000);
  assert.equal(nextShowTime(1_000, 5_000, 60_000), 60_000);
});

test("tooltip placement: AUTO takes the side with the most room, inside the viewport", () => {
  const view = { width: 1000, height: 800 };
  const size = { width: 200, height: 100 };
  // A target near the top: below has the most room.
  let p = place({ top: 10, left: 400, width: 100, height: 30 }, size, view, "auto");
  assert.equal(p.side, "bottom");
  assert.equal(p.top, 10 + 30 + 10);
  assert.equal(p.left, 350);
  assert.equal(p.arrow, 100);
  // Near the bottom: above.
  assert.equal(place({ top: 750, left: 400, width: 100, height: 30 }, size, view, "auto").side, "top");
  // A tall target on the left edge: right.
  assert.equal(place({ top: 0, left: 0, width: 50, height: 800 }, size, view, "auto").side, "right");
  // A requested side is honoured even when cramped, and the tooltip is clamped along it.
  p = place({ top: 10, left: 0, width: 20, height: 20 }, size, view, "top");
  assert.equal(p.side, "top");
  assert.equal(p.left, 8);
  assert.ok(p.arrow >= 12 && p.arrow <= 188);
  assert.equal(room("left", { top: 0, left: 300, width: 10, height: 10 }, size, view), 300 - 10 - 200);
});

test("action URLs: web URLs are http(s) only, deep links anything but script-running schemes", () => {
  assert.equal(webUrl("https://e.com/x"), "https://e.com/x");
  assert.equal(webUrl(" http://e.com "), "http://e.com");
  for (const bad of ["javascript:alert(1)", "myapp://x", "/relative", "", "https://e.com/a b", "data:text/html,x"]) {
    assert.equal(webUrl(bad), undefined, bad);
  }
  assert.equal(deepLink("myapp://settings/billing"), "myapp://settings/billing");
  assert.equal(deepLink("/settings"), "/settings");
  assert.equal(deepLink("https://e.com"), "https://e.com");
  for (const bad of ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "vbscript:x", "file:///x", "blob:x", "java\nscript:x", ""]) {
    assert.equal(deepLink(bad), undefined, bad);
  }
});

test("a token function is called once, again after invalidate, and a failure is not kept", async () => {
  let calls = 0;
  const answers = ["t1", Promise.reject(new Error("offline")), "t2"];
  answers[1].catch(() => {});
  const tokens = new TokenSource(async () => answers[calls++]);
  assert.equal(tokens.refreshable, true);
  assert.equal(await tokens.get(), "t1");
  assert.equal(await tokens.get(), "t1");
  tokens.invalidate();
  await assert.rejects(tokens.get(), /offline/);
  assert.equal(await tokens.get(), "t2");
  assert.equal(calls, 3);
  const fixed = new TokenSource("s");
  assert.equal(fixed.refreshable, false);
  assert.equal(await fixed.get(), "s");
  await assert.rejects(new TokenSource(async () => "").get(), /no token/);
});

test("the unread count: server counts replace it, new and read messages adjust it", () => {
  const events = [];
  const store = new MessageStore((changed) => changed && events.push(store.unreadCount));
  const content = { body: { case: "inApp", value: { title: "t" } } };
  const msg = (id, createdMs, extra = {}) => create(MessageSchema, { id, content, createTime: timestampFromMs(createdMs), ...extra });
  // Before any server count, each unread message counts.
  store.upsert(msg("a", 1_000));
  assert.equal(store.unreadCount, 1);
  // The server's count taken at t=5000 replaces it.
  store.setUnread(4, 5_000);
  assert.equal(store.unreadCount, 4);
  // A replayed message from before the count is already in it; a newer one is not.
  store.upsert(msg("b", 4_000));
  assert.equal(store.unreadCount, 4);
  store.upsert(msg("c", 6_000));
  assert.equal(store.unreadCount, 5);
  // The same message again changes nothing; read takes one away; archived stays away.
  store.upsert(msg("c", 6_000));
  assert.equal(store.unreadCount, 5);
  store.upsert(msg("c", 6_000, { readTime: timestampFromMs(7_000) }));
  assert.equal(store.unreadCount, 4);
  store.upsert(msg("b", 4_000, { archiveTime: timestampFromMs(7_000) }));
  assert.equal(store.unreadCount, 3);
  // Messages listed with a count are in it.
  store.setUnread(2, 8_000);
  store.upsert(msg("d", 7_500), true);
  assert.equal(store.unreadCount, 2);
  // An answer overtaken by a later one does not bring an older state back.
  store.upsert(msg("c", 6_000));
  assert.ok(store.get("c").readTime);
  // A listed copy still unread on the server, read here meanwhile, is not counted.
  store.upsert(msg("e", 7_600, { readTime: timestampFromMs(7_700) }));
  store.setUnread(3, 9_000);
  store.upsert(msg("e", 7_600), true);
  assert.equal(store.unreadCount, 2);
  assert.deepEqual(events, [1, 4, 5, 4, 3, 2, 3, 2]);
  // Newest first, archived left out.
  assert.deepEqual(store.inbox().map((m) => m.id), ["e", "d", "c", "a"]);
  // Messages that are not in-app, or have no id, are not kept.
  store.upsert(create(MessageSchema, { id: "push", createTime: timestampFromMs(9_500) }));
  store.upsert(create(MessageSchema, { content, createTime: timestampFromMs(9_500) }));
  assert.equal(store.get("push"), undefined);
  assert.equal(store.unreadCount, 2);
});
