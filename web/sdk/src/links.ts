// Which action URLs the SDK opens. URL actions: absolute http or https URLs only.
// DEEP_LINK actions: any scheme (myapp://…) or a relative path, except the schemes that
// run code or read local data in a browser (javascript:, data:, vbscript:, file:, blob:).

const BLOCKED = new Set(["javascript", "data", "vbscript", "file", "blob"]);

function scheme(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
}

function clean(raw: string): string | undefined {
  const url = raw.trim();
  return url === "" || /[\u0000-\u0020\u007f-\u009f]/.test(url) ? undefined : url;
}

export function webUrl(raw: string): string | undefined {
  const url = clean(raw);
  const s = url && scheme(url);
  return s === "http" || s === "https" ? url : undefined;
}

export function deepLink(raw: string): string | undefined {
  const url = clean(raw);
  if (!url) return undefined;
  const s = scheme(url);
  return s && BLOCKED.has(s) ? undefined : url;
}
