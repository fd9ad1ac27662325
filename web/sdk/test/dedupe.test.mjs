import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { MessageState } from "../../gen/herald/common/v1/common_pb.ts";
import { MessageSchema } from "../../gen/herald/delivery/v1/delivery_pb.ts";
import { BoundedSet, isExpired, isShowable } from "../src/dedupe.ts";

test("the set answers whether an id is new and forgets the oldest beyond its bound", () => {
  const s = new BoundedSet(3);
  assert.equal(s.add("a"), true);
  assert.equal(s.add("a"), false);
  s.add("b");
  s.add("c");
  s.add("d");
  assert.equal(s.size, 3);
  assert.equal(s.has("a"), false);
  assert.equal(s.has("d"), true);
  assert.equal(s.add("b"), false);
});

test("only pending or delivered, unexpired messages are showable", () => {
  const now = 1_700_000_000_000;
  const msg = (state, expireMs) =>
    create(MessageSchema, { id: "m", state, expireTime: expireMs === undefined ? undefined : timestampFromMs(expireMs) });
  assert.equal(isShowable(msg(MessageState.PENDING), now), true);
  assert.equal(isShowable(msg(MessageState.DELIVERED), now), true);
  assert.equal(isShowable(msg(MessageState.UNSPECIFIED), now), true);
  for (const s of [MessageState.DISPLAYED, MessageState.CLICKED, MessageState.DISMISSED, MessageState.READ, MessageState.ARCHIVED]) {
    assert.equal(isShowable(msg(s), now), false, MessageState[s]);
  }
  assert.equal(isShowable(msg(MessageState.DELIVERED, now + 1), now), true);
  assert.equal(isShowable(msg(MessageState.DELIVERED, now), now), false);
  assert.equal(isExpired(msg(MessageState.DELIVERED, now - 1), now), true);
  assert.equal(isExpired(msg(MessageState.DELIVERED), now), false);
});
