// The dashboard's own styles (the chart's come from uPlot).
export const css = `
:root { color-scheme: light; --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f9fafb; }
#app { max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
nav { display: flex; gap: 1.25rem; align-items: center; margin-bottom: 1.5rem; }
nav strong { margin-right: auto; }
nav a[aria-current="page"] { font-weight: 600; text-decoration: none; }
a, button.link { color: var(--accent); }
button.link { background: none; border: 0; padding: 0; font: inherit; cursor: pointer; text-decoration: underline; }
h1 { font-size: 1.5rem; margin: 0 0 .75rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: .5rem .65rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.up { color: #047857; font-weight: 600; }
td.down { color: #b91c1c; font-weight: 600; }
.muted { color: var(--muted); }
.status { padding: .1rem .5rem; border-radius: 999px; background: #f3f4f6; font-size: .85rem; }
.status.active { background: #dcfce7; color: #166534; }
.status.paused { background: #fef9c3; color: #854d0e; }
.warning { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; padding: .75rem 1rem; border-radius: 6px; }
.error { color: #b91c1c; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1.25rem; display: grid; gap: .5rem; max-width: 32rem; }
.signin { margin: 10vh auto 0; }
input, select { font: inherit; padding: .45rem .6rem; border: 1px solid #d1d5db; border-radius: 6px; }
button[type="submit"] { font: inherit; padding: .5rem 1rem; border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; justify-self: start; }
:focus-visible { outline: 3px solid #93c5fd; outline-offset: 2px; }
.controls { display: flex; gap: .75rem; margin-bottom: .5rem; }
.chart { background: #fff; border: 1px solid var(--line); padding: .5rem; min-height: 300px; }
.decision { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; margin-top: 1rem; }
.decision h3 { margin: 0; font-size: 1rem; text-transform: capitalize; }
.decision ol { margin: .5rem 0 0; padding-left: 1.25rem; }
.decision li.fail { color: #b91c1c; }
.decision .mark { font-weight: 700; }
@media (prefers-reduced-motion: reduce) { * { transition: none !important; animation: none !important; } }
`;
