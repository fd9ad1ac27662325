// The operator dashboard: campaigns with their status; per campaign the numbers of each
// variant against control (GetCampaignStats) and a time series (GetTimeSeries); and
// "why didn't this user get it" (ExplainDecision). It talks gRPC-Web to trigger and
// analytics with an admin API key the operator types in, kept in sessionStorage only
// (gone when the browser session ends).

import { createClient, ConnectError, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import uPlot from "uplot";
import uPlotCss from "uplot/dist/uPlot.min.css";
import {
  AnalyticsService,
  BucketSize,
  Metric,
  type CampaignStats,
  type Effect,
  type VariantStats,
} from "../gen-dashboard/herald/analytics/v1/analytics_pb";
import { TriggerService, DecisionOutcome, DecisionCause, DecisionReasonCode } from "../gen-dashboard/herald/trigger/v1/trigger_pb";
import { CampaignStatus, type Campaign } from "../gen-dashboard/herald/trigger/v1/campaign_pb";
import { css } from "./style";

interface DevConfig {
  workspace: string;
  trigger: string;
  analytics: string;
}

const KEY = "herald.dashboard.adminKey";
const TIMEOUT_MS = 10_000;

let trigger: Client<typeof TriggerService>;
let analytics: Client<typeof AnalyticsService>;
let config: DevConfig;

const app = document.getElementById("app") as HTMLElement;

/** A DOM element with attributes and children. */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function callOptions() {
  return {
    headers: { authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ""}` },
    timeoutMs: TIMEOUT_MS,
  };
}

function errorText(e: unknown): string {
  if (e instanceof ConnectError) return `${e.code === 16 ? "unauthenticated" : e.name}: ${e.rawMessage}`;
  return String(e);
}

function failure(e: unknown): HTMLElement {
  if (e instanceof ConnectError && (e.code === 16 || e.code === 7)) {
    return el("p", { class: "error", role: "alert" }, `The key was refused (${e.rawMessage}). `, signOutLink());
  }
  return el("p", { class: "error", role: "alert" }, errorText(e));
}

function signOutLink(): HTMLElement {
  const a = el("a", { href: "#/" }, "Sign in with another key");
  a.addEventListener("click", () => sessionStorage.removeItem(KEY));
  return a;
}

const statusNames: Record<number, string> = {
  [CampaignStatus.DRAFT]: "draft",
  [CampaignStatus.ACTIVE]: "active",
  [CampaignStatus.PAUSED]: "paused",
  [CampaignStatus.ARCHIVED]: "archived",
};

function triggerText(c: Campaign): string {
  const t = c.trigger?.kind;
  switch (t?.case) {
    case "event":
      return `event ${t.value.eventName}`;
    case "segmentEntry":
      return `enters segment ${t.value.segmentId}`;
    case "goal":
      return `goal: ${t.value.occurrence}× ${t.value.eventName}`;
    case "time":
      return `time (${t.value.kind.case ?? "unset"})`;
    default:
      return "—";
  }
}

function number(n: bigint | number): string {
  return Number(n).toLocaleString("en");
}

function percent(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : "—";
}

// ---- sign-in ----

function signIn(): void {
  const input = el("input", {
    id: "key",
    type: "password",
    autocomplete: "off",
    required: "",
    "aria-describedby": "key-help",
  });
  const form = el(
    "form",
    { class: "card signin" },
    el("h1", {}, "Herald dashboard"),
    el("label", { for: "key" }, "Admin API key"),
    input,
    el(
      "p",
      { id: "key-help", class: "muted" },
      "A server API key with the admin scope (herald dev prints one as HERALD_KEY). It is kept in this browser tab's session storage only.",
    ),
    el("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    location.hash = "#/campaigns";
    route();
  });
  app.replaceChildren(form);
  input.focus();
}

// ---- campaigns ----

async function campaigns(): Promise<void> {
  const body = el("tbody");
  const table = el(
    "table",
    { "aria-label": "Campaigns" },
    el(
      "thead",
      {},
      el("tr", {}, ...["Campaign", "Status", "Trigger", "Variants", "Control", "Updated"].map((h) => el("th", { scope: "col" }, h))),
    ),
    body,
  );
  app.replaceChildren(nav("campaigns"), el("h1", {}, "Campaigns"), table);
  try {
    let pageToken = "";
    do {
      const page = await trigger.listCampaigns({ pageSize: 200, pageToken }, callOptions());
      for (const c of page.campaigns) {
        const link = el("a", { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.name || c.id);
        const status = statusNames[c.status] ?? "unspecified";
        body.append(
          el(
            "tr",
            {},
            el("td", {}, link),
            el("td", {}, el("span", { class: `status ${status}` }, status)),
            el("td", {}, triggerText(c)),
            el("td", { class: "num" }, String(c.variants.length)),
            el("td", { class: "num" }, controlShare(c)),
            el("td", {}, c.updateTime ? timestampDate(c.updateTime).toLocaleString() : "—"),
          ),
        );
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: "6" }, "No campaigns yet.")));
  } catch (e) {
    app.append(failure(e));
  }
}

function controlShare(c: Campaign): string {
  const total = c.variants.reduce((n, v) => n + v.weight, 0) + c.controlWeight;
  return c.controlWeight && total ? percent(c.controlWeight / total, 0) : "—";
}

// ---- one campaign ----

function effectCell(effect: Effect | undefined): HTMLElement {
  if (!effect) return el("td", {}, "—");
  if (effect.insufficientData) return el("td", { class: "muted" }, effect.insufficientData);
  const s = effect.sequential;
  const interval = s ? ` [${percent(s.lower)}, ${percent(s.upper)}]` : "";
  const significant = s && (s.lower > 0 || s.upper < 0);
  return el("td", { class: significant ? (s!.lower > 0 ? "up" : "down") : "" }, `${percent(effect.estimate)}${interval}`);
}

function armName(v: VariantStats): string {
  return v.control ? "Control" : v.variantId || "All variants";
}

function statsTable(stats: CampaignStats): HTMLElement {
  const head = [
    "Arm",
    "Exposed users",
    "Sent",
    "Impressions",
    "Clicks",
    "Click rate",
    "Dismissals",
    "Conversions",
    "Conversion rate",
    "Lift (95% sequential interval)",
    "Chance to beat control",
  ];
  const rows = stats.variants.map((v) => {
    const relative = v.vsControl?.relative;
    return el(
      "tr",
      { "data-arm": v.control ? "control" : v.variantId },
      el("th", { scope: "row" }, armName(v)),
      el("td", { class: "num" }, number(v.exposed)),
      el("td", { class: "num" }, v.control ? "—" : number(v.sent)),
      el("td", { class: "num", "data-metric": "impressions" }, v.control ? "—" : number(v.impressions)),
      el("td", { class: "num", "data-metric": "clicks" }, v.control ? "—" : number(v.clicks)),
      el("td", { class: "num" }, v.control ? "—" : percent(v.clickRate)),
      el("td", { class: "num", "data-metric": "dismissals" }, v.control ? "—" : number(v.dismissals)),
      el("td", { class: "num", "data-metric": "conversions" }, number(v.conversions)),
      el("td", { class: "num" }, percent(v.conversionRate)),
      v.control ? el("td", {}, "baseline") : effectCell(relative),
      el(
        "td",
        { class: "num" },
        v.control || !relative || relative.insufficientData ? "—" : percent(relative.chanceToBeatControl, 0),
      ),
    );
  });
  return el(
    "table",
    { "aria-label": "Results per arm" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows),
  );
}

function srm(stats: CampaignStats): HTMLElement | null {
  const s = stats.sampleRatio;
  if (!s) return null;
  if (s.mismatch) {
    return el(
      "p",
      { class: "warning", role: "alert" },
      `Sample ratio mismatch: the arms' exposures do not match their weights (p = ${s.pValue.toPrecision(2)} < ${s.threshold}). Something is assigning or counting users unevenly; do not trust these results until it is found.`,
    );
  }
  if (s.insufficientData) return el("p", { class: "muted" }, `Split check: ${s.insufficientData}`);
  return el("p", { class: "muted" }, `Split check: the exposures match the weights (p = ${s.pValue.toPrecision(2)}).`);
}

async function campaign(id: string): Promise<void> {
  const header = el("h1", {}, id);
  const summary = el("div");
  const chart = el("section", { "aria-label": "Time series" });
  const explainLink = el("a", { href: `#/explain/${encodeURIComponent(id)}` }, "Why didn't a user get it?");
  app.replaceChildren(nav("campaigns"), header, summary, chart, el("p", {}, explainLink));
  try {
    const [{ campaign: c }, { stats }] = await Promise.all([
      trigger.getCampaign({ campaignId: id }, callOptions()),
      analytics.getCampaignStats({ campaignId: id }, callOptions()),
    ]);
    header.textContent = c?.name || id;
    const goal = stats?.goal;
    summary.replaceChildren(
      el(
        "p",
        { class: "muted" },
        `${statusNames[c?.status ?? 0] ?? "unspecified"} · ${c ? triggerText(c) : ""}`,
        goal?.eventName ? ` · goal: ${goal.eventName} (version ${goal.version})` : " · no conversion goal",
        stats?.method ? ` · ${stats.method.defaultTest} test, α = ${stats.method.alpha}` : "",
      ),
    );
    if (stats) {
      const warning = srm(stats);
      if (warning) summary.append(warning);
      summary.append(statsTable(stats));
      await series(chart, id, stats);
    }
  } catch (e) {
    summary.replaceChildren(failure(e));
  }
}

const metrics: [Metric, string][] = [
  [Metric.IMPRESSIONS, "Impressions"],
  [Metric.CLICKS, "Clicks"],
  [Metric.DISMISSALS, "Dismissals"],
  [Metric.CONVERSIONS, "Conversions"],
  [Metric.EXPOSED, "Exposed users"],
];

async function series(section: HTMLElement, id: string, stats: CampaignStats): Promise<void> {
  const metric = el("select", { id: "metric", "aria-label": "Metric" }, ...metrics.map(([m, name]) => el("option", { value: String(m) }, name)));
  const bucket = el(
    "select",
    { id: "bucket", "aria-label": "Bucket" },
    el("option", { value: String(BucketSize.HOUR) }, "per hour, last 48 hours"),
    el("option", { value: String(BucketSize.DAY) }, "per day, last 30 days"),
  );
  const plot = el("div", { class: "chart", role: "img", "aria-label": "Chart" });
  section.replaceChildren(el("h2", {}, "Over time"), el("div", { class: "controls" }, metric, bucket), plot);
  const draw = async () => {
    const size = Number(bucket.value) as BucketSize;
    const hours = size === BucketSize.HOUR ? 48 : 30 * 24;
    const start = new Date(Date.now() - hours * 3_600_000);
    const arms = stats.variants.map((v) => ({ name: armName(v), variantId: v.control ? "" : v.variantId, control: v.control }));
    try {
      const answers = await Promise.all(
        arms.map((arm) =>
          analytics.getTimeSeries(
            {
              campaignId: id,
              metric: Number(metric.value) as Metric,
              bucketSize: size,
              startTime: timestampFromDate(start),
              variantId: arm.variantId,
              control: arm.control,
            },
            callOptions(),
          ),
        ),
      );
      const xs = (answers[0]?.points ?? []).map((p) => (p.startTime ? timestampDate(p.startTime).getTime() / 1000 : 0));
      const data: uPlot.AlignedData = [xs, ...answers.map((a) => a.points.map((p) => Number(p.value)))];
      const label = metrics.find(([m]) => m === Number(metric.value))?.[1] ?? "";
      plot.setAttribute("aria-label", `${label} per ${size === BucketSize.HOUR ? "hour" : "day"}, one line per arm`);
      plot.replaceChildren();
      const colors = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#6b7280"];
      new uPlot(
        {
          width: Math.min(900, plot.clientWidth || 900),
          height: 280,
          series: [
            {},
            ...arms.map((arm, i) => ({
              label: arm.name,
              stroke: arm.control ? "#6b7280" : colors[i % colors.length],
              width: 2,
            })),
          ],
          axes: [{}, { label }],
        },
        data,
        plot,
      );
    } catch (e) {
      plot.replaceChildren(failure(e));
    }
  };
  metric.addEventListener("change", draw);
  bucket.addEventListener("change", draw);
  await draw();
}

// ---- explain ----

function enumName(e: Record<number, string>, value: number): string {
  return (e[value] ?? String(value)).toLowerCase().replace(/_/g, " ");
}

function explain(campaignId: string): void {
  const campaignInput = el("input", { id: "explain-campaign", required: "", value: campaignId });
  const userInput = el("input", { id: "explain-user", required: "" });
  const results = el("div", { "aria-live": "polite" });
  const form = el(
    "form",
    { class: "card" },
    el("label", { for: "explain-campaign" }, "Campaign id"),
    campaignInput,
    el("label", { for: "explain-user" }, "User id"),
    userInput,
    el("button", { type: "submit" }, "Explain"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    results.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    try {
      const answer = await trigger.explainDecision(
        { campaignId: campaignInput.value.trim(), userId: userInput.value.trim(), pageSize: 20 },
        callOptions(),
      );
      if (!answer.decisions.length) {
        results.replaceChildren(
          el("p", {}, "No decision recorded: the campaign's trigger never fired for this user (or the decisions are older than the retention)."),
        );
        return;
      }
      results.replaceChildren(
        ...answer.decisions.map((d) =>
          el(
            "article",
            { class: "decision" },
            el(
              "h3",
              {},
              `${enumName(DecisionOutcome as unknown as Record<number, string>, d.outcome)} · ${d.decideTime ? timestampDate(d.decideTime).toLocaleString() : ""}`,
            ),
            el(
              "p",
              { class: "muted" },
              `cause: ${enumName(DecisionCause as unknown as Record<number, string>, d.cause)} ${d.causeId}`,
              d.variantId ? ` · variant ${d.variantId}` : "",
            ),
            el(
              "ol",
              {},
              ...d.reasons.map((r) =>
                el(
                  "li",
                  { class: r.passed ? "pass" : "fail" },
                  el("span", { class: "mark", "aria-label": r.passed ? "passed" : "failed" }, r.passed ? "✓" : "✗"),
                  ` ${enumName(DecisionReasonCode as unknown as Record<number, string>, r.code)}: ${r.message}`,
                ),
              ),
            ),
          ),
        ),
      );
    } catch (err) {
      results.replaceChildren(failure(err));
    }
  });
  app.replaceChildren(nav("explain"), el("h1", {}, "Why didn't this user get it?"), form, results);
  (campaignId ? userInput : campaignInput).focus();
}

// ---- shell ----

function nav(current: string): HTMLElement {
  const link = (href: string, name: string, id: string) =>
    el("a", current === id ? { href, "aria-current": "page" } : { href }, name);
  const out = el("button", { type: "button", class: "link" }, "Sign out");
  out.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.hash = "#/";
    route();
  });
  return el(
    "nav",
    { "aria-label": "Dashboard" },
    el("strong", {}, `Herald · ${config.workspace}`),
    link("#/campaigns", "Campaigns", "campaigns"),
    link("#/explain/", "Explain a decision", "explain"),
    out,
  );
}

function route(): void {
  if (!sessionStorage.getItem(KEY)) return signIn();
  const [, page = "", arg = ""] = location.hash.split("/");
  const id = decodeURIComponent(arg);
  if (page === "campaigns" && id) void campaign(id);
  else if (page === "explain") explain(id);
  else void campaigns();
}

async function main(): Promise<void> {
  const style = document.createElement("style");
  style.textContent = uPlotCss + css;
  document.head.append(style);
  config = (await (await fetch("/dev/config.json")).json()) as DevConfig;
  trigger = createClient(TriggerService, createGrpcWebTransport({ baseUrl: config.trigger }));
  analytics = createClient(AnalyticsService, createGrpcWebTransport({ baseUrl: config.analytics }));
  window.addEventListener("hashchange", route);
  route();
}

void main();
