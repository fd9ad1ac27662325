// Browser tests: the demo app and the dashboard in headless Chromium (Debian's, driven by
// playwright-core), against a real `herald dev` on a fresh data directory. Run by
// scripts/browser-test.sh (and .ci/run); screenshots of each state go to
// $HERALD_SCREENSHOTS (default web/browser/screenshots).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const herald = process.env.HERALD_BIN ?? join(root, "target/debug/herald");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const shots = process.env.HERALD_SCREENSHOTS ?? join(import.meta.dirname, "screenshots");
const WEB = "http://127.0.0.1:50080";

let data;
let server;
let browser;

/** Polls `check` until it returns a truthy value, at most `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startHerald() {
  const child = spawn(herald, ["dev", "--data-dir", data], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  child.log = () => log;
  const exited = new Promise((r) => child.on("exit", r));
  child.stopped = exited;
  // Ready once the demo campaigns exist (the banner says so on first start) or, on a
  // restart, once the web server and delivery answer.
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`herald dev exited:\n${log}`);
      const r = await fetch(`${WEB}/dev/config.json`);
      return r.ok && log.includes("Herald is running");
    },
    60_000,
    "herald dev",
  ).catch((e) => {
    throw new Error(`${e.message}\n${log}`);
  });
  return child;
}

async function stopHerald() {
  server.kill("SIGTERM");
  await server.stopped;
}

function adminKey() {
  const text = readFileSync(join(data, "dev-credentials.toml"), "utf8");
  return /server_key\s*=\s*"([^"]+)"/.exec(text)[1];
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

/** A fresh demo page: a new browser context is a new session, so a new demo user. */
async function demoPage() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${WEB}/`);
  await page.locator("#status[data-connection=open]").waitFor({ timeout: 15_000 });
  return page;
}

/** Signs the demo user up and returns the welcome modal, timing it from the click. */
async function signUp(page) {
  const started = Date.now();
  await page.locator("#signup-button").click();
  const modal = page.getByRole("dialog");
  await modal.waitFor({ state: "visible", timeout: 5_000 });
  return { modal, took: Date.now() - started };
}

/** The dashboard's number in `metric` for `arm` of the campaign named `name`. */
async function dashboardCount(page, name, arm, metric) {
  await page.goto(`${WEB}/dashboard/#/campaigns`);
  await page.getByRole("link", { name }).click();
  await page.getByRole("table", { name: "Results per arm" }).waitFor({ timeout: 10_000 });
  // An arm nobody was exposed to yet has no row.
  const cell = page.locator(`tr[data-arm="${arm}"] td[data-metric="${metric}"]`);
  if (!(await cell.count())) return 0;
  return Number((await cell.textContent()).replace(/[^0-9]/g, ""));
}

async function signedInDashboard() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${WEB}/dashboard/`);
  await page.getByLabel("Admin API key").fill(adminKey());
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("table", { name: "Campaigns" }).waitFor();
  return page;
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  data = mkdtempSync(join(tmpdir(), "herald-browser-"));
  server = await startHerald();
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) await stopHerald();
  if (data) rmSync(data, { recursive: true, force: true });
});

test("a tracked event shows a modal within a second; Escape dismisses it and the dashboard counts it", async () => {
  const page = await demoPage();
  await shot(page, "01-demo");
  const { modal, took } = await signUp(page);
  assert.ok(took < 1_000, `the modal took ${took} ms`);
  assert.match(await modal.textContent(), /Ada/);
  // Focus is inside the modal.
  assert.ok(await modal.evaluate((m) => m.contains(document.activeElement)));
  await shot(page, "02-modal");
  await page.keyboard.press("Escape");
  await modal.waitFor({ state: "detached", timeout: 2_000 });

  const dashboard = await signedInDashboard();
  await shot(dashboard, "05-dashboard-campaigns");
  const arm = await until(
    async () => {
      for (const a of ["a", "b"]) if ((await dashboardCount(dashboard, "Demo: welcome", a, "dismissals")) > 0) return a;
      return null;
    },
    10_000,
    "the dismissal on the dashboard",
  );
  assert.ok(arm);
});

test("a click on the modal's action is counted on the dashboard", async () => {
  const page = await demoPage();
  const { modal } = await signUp(page);
  await modal.getByRole("button", { name: "Create a report" }).click();
  await modal.waitFor({ state: "detached", timeout: 2_000 });
  const dashboard = await signedInDashboard();
  await until(
    async () => {
      let clicks = 0;
      for (const a of ["a", "b"]) clicks += await dashboardCount(dashboard, "Demo: welcome", a, "clicks");
      return clicks > 0;
    },
    10_000,
    "the click on the dashboard",
  );
  await shot(dashboard, "06-dashboard-campaign");
});

test("a tooltip appears next to its target", async () => {
  const page = await demoPage();
  await page.locator("#open-reports").click();
  const tooltip = page.getByRole("region", { name: "Export in one click" });
  await tooltip.waitFor({ state: "visible", timeout: 5_000 });
  const target = await page.locator("#export-button").boundingBox();
  const box = await tooltip.boundingBox();
  // Placed below the button (BOTTOM), horizontally overlapping it.
  assert.ok(box.y >= target.y + target.height - 1, `tooltip top ${box.y}, target bottom ${target.y + target.height}`);
  assert.ok(box.y - (target.y + target.height) < 40, "the tooltip is right below its target");
  assert.ok(box.x < target.x + target.width && box.x + box.width > target.x, "the tooltip overlaps its target horizontally");
  await shot(page, "03-tooltip");
});

test("the inbox badge goes up on delivery and down on read", async () => {
  const page = await demoPage();
  const badge = page.locator(".herald-badge");
  const count = async () => Number(((await badge.textContent({ timeout: 500 }).catch(() => "")) || "0").trim() || 0);
  const before = await count();
  await page.locator("#note-button").click();
  await until(async () => (await count()) === before + 1, 5_000, "the badge to go up");
  await page.locator(".herald-inbox-button").click();
  await shot(page, "04-inbox");
  await page.getByText("A note for you").first().click();
  await until(async () => (await count()) === before, 5_000, "the badge to go down");
});

test("after the server restarts the page reconnects and shows a new message once", async () => {
  const page = await demoPage();
  await stopHerald();
  await page.locator("#status:not([data-connection=open])").waitFor({ timeout: 10_000 });
  server = await startHerald();
  await page.locator("#status[data-connection=open]").waitFor({ timeout: 40_000 });
  await page.locator("#open-reports").click();
  const tooltip = page.getByRole("region", { name: "Export in one click" });
  await tooltip.waitFor({ state: "visible", timeout: 5_000 });
  await shot(page, "07-after-restart");
  // A later message on the same stream: anything sent twice would have come before it.
  const badge = page.locator(".herald-badge");
  const count = async () => Number(((await badge.textContent({ timeout: 500 }).catch(() => "")) || "0").trim() || 0);
  const unread = await count();
  await page.locator("#note-button").click();
  await until(async () => (await count()) === unread + 1, 5_000, "the note after the tooltip");
  assert.equal(await page.getByRole("region", { name: "Export in one click" }).count(), 1);
});

/** A gRPC-Web call made by hand from the page, as any script on it could: the status. */
async function rawCall(page, url, path, token, message) {
  return page.evaluate(
    async ({ url, path, token, message }) => {
      const body = new Uint8Array(5 + message.length);
      new DataView(body.buffer).setUint32(1, message.length);
      body.set(message, 5);
      const response = await fetch(url + path, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", authorization: `Bearer ${token}` },
        body,
      });
      return { status: response.headers.get("grpc-status"), message: response.headers.get("grpc-message") };
    },
    { url, path, token, message: [...message] },
  );
}

/** A protobuf length-delimited field. */
function field(number, bytes) {
  return Uint8Array.from([(number << 3) | 2, bytes.length, ...bytes]);
}
const text = (s) => new TextEncoder().encode(s);

test("a user's token cannot track events for another user or read their inbox", async () => {
  const page = await demoPage();
  const { token, user_id: me } = await page.evaluate(() => JSON.parse(sessionStorage.getItem("herald.demo.user")));
  const config = await (await fetch(`${WEB}/dev/config.json`)).json();
  // ListInboxRequest { user_id: "someone-else" }
  const inbox = await rawCall(page, config.delivery, "/herald.delivery.v1.DeliveryService/ListInbox", token, field(4, text("someone-else")));
  assert.equal(inbox.status, "7", `ListInbox of another user: ${JSON.stringify(inbox)}`);
  // TrackRequest { event: { message_id, user_id: "someone-else", name } }
  const event = [...field(1, text(`m-${Date.now()}`)), ...field(2, text("someone-else")), ...field(3, text("signed_up"))];
  const track = await rawCall(page, config.ingest, "/herald.ingest.v1.IngestService/Track", token, field(1, Uint8Array.from(event)));
  assert.equal(track.status, "7", `Track for another user: ${JSON.stringify(track)}`);
  // The same calls for the token's own user go through.
  const own = await rawCall(page, config.delivery, "/herald.delivery.v1.DeliveryService/ListInbox", token, field(4, text(me)));
  assert.ok(own.status === null || own.status === "0", `ListInbox of the token's user: ${JSON.stringify(own)}`);
});
