import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, sleep } from "../src/backoff.ts";

test("delays stay within [0, min(cap, base * 2^n)) and reach the cap", () => {
  const b = new Backoff(500, 30_000, () => 0.999999);
  const seen = [];
  for (let i = 0; i < 10; i++) seen.push(b.next());
  assert.deepEqual(seen.map((d) => Math.ceil(d / 100) * 100), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  for (const d of seen) assert.ok(d >= 0 && d < 30_000);
});

test("full jitter: random 0 waits nothing, and any draw stays under the ceiling", () => {
  assert.equal(new Backoff(500, 30_000, () => 0).next(), 0);
  const b = new Backoff(500, 30_000);
  for (let n = 0; n < 200; n++) {
    const ceiling = b.ceiling();
    const d = b.next();
    assert.ok(d >= 0 && d < ceiling, `${d} < ${ceiling}`);
    assert.ok(ceiling <= 30_000);
  }
});

test("reset starts again from the base", () => {
  const b = new Backoff(500, 30_000, () => 0.999999);
  b.next();
  b.next();
  b.next();
  assert.equal(b.ceiling(), 4000);
  b.reset();
  assert.equal(b.ceiling(), 500);
  assert.ok(b.next() < 500);
});

test("sleep ends early when its signal aborts", async () => {
  const c = new AbortController();
  const started = Date.now();
  const p = sleep(10_000, c.signal);
  c.abort();
  await p;
  assert.ok(Date.now() - started < 1_000);
});
