import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/herald/common/v1/event_pb.ts";
import { toJsonObject } from "../src/struct.ts";

test("plain values convert as JSON.stringify would", () => {
  const date = new Date(Date.UTC(2026, 0, 5, 9));
  const got = toJsonObject({
    plan: "pro",
    amount: 49.5,
    trial: false,
    none: null,
    skipped: undefined,
    fn: () => 1,
    bad: NaN,
    inf: Infinity,
    when: date,
    tags: ["a", 1, null, undefined],
    nested: { deep: { deeper: [{ x: 1 }] } },
  });
  assert.deepEqual(got, {
    plan: "pro",
    amount: 49.5,
    trial: false,
    none: null,
    bad: null,
    inf: null,
    when: "2026-01-05T09:00:00.000Z",
    tags: ["a", 1, null, null],
    nested: { deep: { deeper: [{ x: 1 }] } },
  });
});

test("non-objects, arrays, cycles and BigInts are refused", () => {
  assert.throws(() => toJsonObject([1, 2]), TypeError);
  assert.throws(() => toJsonObject(null), TypeError);
  assert.throws(() => toJsonObject("x"), TypeError);
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  assert.throws(() => toJsonObject(cyclic), TypeError);
  assert.throws(() => toJsonObject({ n: 10n }), TypeError);
  assert.throws(() => toJsonObject({ toJSON: () => [1] }), TypeError);
});

test("the result survives google.protobuf.Struct on the wire", () => {
  const properties = toJsonObject({ plan: "pro", amount: 49, ok: true, none: null, list: [1, "two", { three: 3 }], obj: { a: { b: "c" } } });
  const bytes = toBinary(EventSchema, create(EventSchema, { messageId: "m1", name: "signed_up", properties }));
  const back = fromBinary(EventSchema, bytes);
  assert.deepEqual(back.properties, properties);
});
