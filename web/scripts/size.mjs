// Prints the size of the bundles, raw and gzipped (level 9, as a server would send them).
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

for (const file of ["dist/herald.js", "dist/herald.esm.js"]) {
  const raw = readFileSync(file);
  const gz = gzipSync(raw, { level: 9 });
  const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(`${file}: ${kb(raw.length)} minified, ${kb(gz.length)} min+gzip (${gz.length} bytes)`);
}
