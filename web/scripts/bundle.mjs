// Bundles sdk/src/index.ts into dist/: herald.js (an IIFE that defines window.Herald) and
// herald.esm.js (an ES module), both minified; and the pages herald dev serves: the demo
// app (demo.html, demo.js, which uses herald.js as a host page would) and the operator
// dashboard (dashboard.html, dashboard.js). The output depends only on the sources and
// the pinned packages, so rebuilding an unchanged tree gives identical files.
import { copyFileSync, readFileSync } from "node:fs";
import { build } from "esbuild";
import { common } from "./esbuild-config.mjs";

const { version } = JSON.parse(readFileSync("package.json", "utf8"));
const options = {
  ...common,
  entryPoints: ["sdk/src/index.ts"],
  platform: "browser",
  minify: true,
  legalComments: "none",
  define: { __HERALD_VERSION__: JSON.stringify(version) },
  banner: {
    js:
      `/*! Herald web SDK ${version}. Includes @bufbuild/protobuf and @connectrpc/connect ` +
      `(Apache License 2.0). */`,
  },
};

await build({ ...options, format: "iife", globalName: "Herald", outfile: "dist/herald.js" });
await build({ ...options, format: "esm", outfile: "dist/herald.esm.js" });

const page = { ...common, platform: "browser", format: "iife", minify: true, legalComments: "none" };
await build({ ...page, entryPoints: ["demo/demo.ts"], outfile: "dist/demo.js" });
await build({
  ...page,
  entryPoints: ["dashboard/dashboard.ts"],
  outfile: "dist/dashboard.js",
  // uPlot's stylesheet, injected by the dashboard itself.
  loader: { ".css": "text" },
  banner: { js: "/*! Herald dashboard. Includes uPlot (MIT), @bufbuild/protobuf and @connectrpc/connect (Apache License 2.0). */" },
});
copyFileSync("demo/index.html", "dist/demo.html");
copyFileSync("dashboard/index.html", "dist/dashboard.html");
