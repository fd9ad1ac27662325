// npm test: bundles each sdk/test/*.test.mjs (which import the TypeScript sources) with
// esbuild into .test-build/, then runs them with node's test runner.
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { build } from "esbuild";
import { common } from "./esbuild-config.mjs";

const tests = readdirSync("sdk/test").filter((f) => f.endsWith(".test.mjs")).sort();
rmSync(".test-build", { recursive: true, force: true });
await build({
  ...common,
  entryPoints: tests.map((f) => `sdk/test/${f}`),
  outdir: ".test-build",
  outbase: "sdk/test",
  outExtension: { ".js": ".mjs" },
  platform: "node",
  format: "esm",
  define: { __HERALD_VERSION__: '"test"' },
});
const run = spawnSync(process.execPath, ["--test", ...tests.map((f) => `.test-build/${f}`)], { stdio: "inherit" });
process.exit(run.status ?? 1);
