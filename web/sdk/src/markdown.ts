// A small, safe Markdown subset for message bodies. It is parsed to a tree that is built
// with DOM calls (text nodes and a few elements), never with innerHTML, so nothing in a
// body can become markup.
//
// The subset:
//   - paragraphs, separated by blank lines; a single newline inside a paragraph is a line
//     break (as in GitHub comments; strict CommonMark would make it a space)
//   - **strong** or __strong__, *emphasis* or _emphasis_ (underscores not inside words)
//   - `code` (any number of backticks, as in CommonMark)
//   - [links](https://example.com) and <https://example.com>; only http:, https: and
//     mailto: URLs become links, anything else (javascript:, data:, relative URLs…) is
//     shown as the link's text alone; an optional "title" after the URL is ignored
//   - lists: lines starting with "- ", "* " or "+ " (bulleted) or "1. " / "1) "
//     (numbered, from the first item's number); one level, no nesting
//   - backslash escapes of ASCII punctuation (\* \_ \` \[ …)
// Everything else is shown as written, including raw HTML (<b>, <script>), HTML entities
// (&amp;), headings (#) and images (![…](…)).

export type Inline =
  | { t: "text"; v: string }
  | { t: "br" }
  | { t: "code"; v: string }
  | { t: "strong" | "em"; c: Inline[] }
  | { t: "link"; href: string; c: Inline[] };

export type Block =
  | { t: "p"; c: Inline[] }
  | { t: "ul"; items: Inline[][] }
  | { t: "ol"; start: number; items: Inline[][] };

const BULLET = /^ {0,3}[-*+][ \t]+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)][ \t]+(.*)$/;

/** The URL if it is an absolute http:, https: or mailto: URL, else undefined. */
export function safeUrl(raw: string): string | undefined {
  const url = raw.trim();
  // No whitespace or control characters anywhere: browsers strip some of them when
  // parsing, which could otherwise hide a scheme.
  if (url === "" || /[\u0000-\u0020\u007f-\u009f]/.test(url)) return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  return scheme === "http" || scheme === "https" || scheme === "mailto" ? url : undefined;
}

export function parseMarkdown(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let para: string[] = [];
  let list: { ordered: boolean; start: number; items: string[][] } | undefined;

  const flush = () => {
    if (para.length) blocks.push({ t: "p", c: parseInline(para.join("\n").trim()) });
    para = [];
    if (list) {
      const items = list.items.map((item) => parseInline(item.join("\n")));
      blocks.push(list.ordered ? { t: "ol", start: list.start, items } : { t: "ul", items });
    }
    list = undefined;
  };

  for (const line of lines) {
    if (line.trim() === "") {
      flush();
      continue;
    }
    const bullet = BULLET.exec(line);
    let ordered = bullet ? null : ORDERED.exec(line);
    // As in CommonMark, only a list starting at 1 may interrupt a paragraph.
    if (ordered && para.length && ordered[1] !== "1") ordered = null;
    if (bullet || ordered) {
      const isOrdered = !!ordered;
      const text = (bullet ? bullet[1] : ordered![2]) ?? "";
      if (!list || list.ordered !== isOrdered) {
        flush();
        list = { ordered: isOrdered, start: ordered ? Number(ordered[1]) : 1, items: [] };
      }
      list.items.push([text.trim()]);
    } else if (list) {
      // A lazy continuation line belongs to the last item.
      list.items[list.items.length - 1]!.push(line.trim());
    } else {
      para.push(line);
    }
  }
  flush();
  return blocks;
}

const PUNCT = /[!-/:-@[-`{-~]/;

function isSpace(ch: string | undefined): boolean {
  return ch === undefined || /\s/.test(ch);
}

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && /[\p{L}\p{N}]/u.test(ch);
}

function runLength(s: string, i: number, ch: string): number {
  let n = 0;
  while (s[i + n] === ch) n++;
  return n;
}

/** The end index of the code span opening with n backticks at i, or -1. */
function codeSpanEnd(s: string, i: number, n: number): number {
  let j = i + n;
  while (j < s.length) {
    if (s[j] === "`") {
      const m = runLength(s, j, "`");
      if (m === n) return j;
      j += m;
    } else j++;
  }
  return -1;
}

/**
 * The index of the closing delimiter run for an opener of n `ch` at i (the closer's
 * last n characters are used), or -1. Code spans and escapes are skipped.
 */
function findCloser(s: string, i: number, ch: string, n: number): number {
  let j = i + n;
  while (j < s.length) {
    const c = s[j];
    if (c === "\\") {
      j += 2;
    } else if (c === "`") {
      const m = runLength(s, j, "`");
      const end = codeSpanEnd(s, j, m);
      j = end < 0 ? j + m : end + m;
    } else if (c === ch) {
      const m = runLength(s, j, ch);
      // A single delimiter skips a run of two (a nested strong: *a **b** c*).
      const closes =
        (n === 1 ? m !== 2 : m >= n) &&
        j > i + n &&
        !isSpace(s[j - 1]) &&
        (ch !== "_" || !isWordChar(s[j + m]));
      if (closes) return j + m - n;
      j += m;
    } else j++;
  }
  return -1;
}

/** Parses `[text](url "title")` at i; returns the parts and the index after it. */
function parseLink(s: string, i: number): { text: string; url: string; end: number } | undefined {
  let depth = 0;
  let j = i + 1;
  for (; j < s.length; j++) {
    const c = s[j];
    if (c === "\\") j++;
    else if (c === "`") {
      const m = runLength(s, j, "`");
      const end = codeSpanEnd(s, j, m);
      j = (end < 0 ? j : end) + m - 1;
    } else if (c === "[") depth++;
    else if (c === "]") {
      if (depth === 0) break;
      depth--;
    }
  }
  if (j >= s.length || s[j + 1] !== "(") return undefined;
  // The URL may hold one level of balanced parentheses, as in …/Foo_(bar).
  const m = /^\(\s*(<[^<>\n]*>|(?:[^\s()]|\([^\s()]*\))*)(?:\s+("[^"]*"|'[^']*'))?\s*\)/.exec(s.slice(j + 1));
  if (!m) return undefined;
  let url = m[1] ?? "";
  if (url.startsWith("<")) url = url.slice(1, -1);
  return { text: s.slice(i + 1, j), url: unescape(url), end: j + 1 + m[0].length };
}

function unescape(s: string): string {
  return s.replace(/\\([!-/:-@[-`{-~])/g, "$1");
}

export function parseInline(s: string, inLink = false): Inline[] {
  const out: Inline[] = [];
  let text = "";
  const push = (node: Inline) => {
    if (text) out.push({ t: "text", v: text });
    text = "";
    out.push(node);
  };

  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === "\\" && i + 1 < s.length && PUNCT.test(s[i + 1]!)) {
      text += s[i + 1];
      i += 2;
    } else if (c === "\\" && s[i + 1] === "\n") {
      push({ t: "br" });
      i += 2;
    } else if (c === "\n") {
      text = text.replace(/[ \t]+$/, "");
      push({ t: "br" });
      i++;
      while (s[i] === " " || s[i] === "\t") i++;
    } else if (c === "`") {
      const n = runLength(s, i, "`");
      const end = codeSpanEnd(s, i, n);
      if (end < 0) {
        text += s.slice(i, i + n);
        i += n;
        continue;
      }
      let code = s.slice(i + n, end).replace(/\n/g, " ");
      if (code.length > 2 && code.startsWith(" ") && code.endsWith(" ") && code.trim()) {
        code = code.slice(1, -1);
      }
      push({ t: "code", v: code });
      i = end + n;
    } else if (c === "*" || c === "_") {
      const n = runLength(s, i, c);
      const opens =
        !isSpace(s[i + n]) && (c !== "_" || !isWordChar(s[i - 1]));
      let done = false;
      if (opens) {
        // The opener's first `want` characters pair with the closer's last ones, so
        // ***x*** is strong around *x*.
        for (const want of n >= 2 ? [2, 1] : [1]) {
          const close = findCloser(s, i, c, want);
          if (close >= 0) {
            const inner = s.slice(i + want, close);
            push({ t: want === 2 ? "strong" : "em", c: parseInline(inner, inLink) });
            i = close + want;
            done = true;
            break;
          }
        }
      }
      if (!done) {
        text += s.slice(i, i + n);
        i += n;
      }
    } else if (c === "[" && !inLink) {
      const link = parseLink(s, i);
      if (!link) {
        text += c;
        i++;
        continue;
      }
      const children = parseInline(link.text, true);
      const href = safeUrl(link.url);
      if (href) push({ t: "link", href, c: children });
      else for (const child of children) push(child);
      i = link.end;
    } else if (c === "<" && !inLink) {
      const m = /^<([a-z][a-z0-9+.-]*:[^\s<>]*)>/i.exec(s.slice(i));
      const href = m ? safeUrl(m[1]!) : undefined;
      if (m && href) {
        push({ t: "link", href, c: [{ t: "text", v: href.replace(/^mailto:/i, "") }] });
        i += m[0].length;
      } else {
        text += c;
        i++;
      }
    } else {
      text += c;
      i++;
    }
  }
  if (text) out.push({ t: "text", v: text });
  return merge(out);
}

/** Joins adjacent text nodes. */
function merge(nodes: Inline[]): Inline[] {
  const out: Inline[] = [];
  for (const n of nodes) {
    const last = out[out.length - 1];
    if (n.t === "text" && last?.t === "text") last.v += n.v;
    else out.push(n);
  }
  return out;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function inlineHtml(nodes: Inline[]): string {
  return nodes
    .map((n) => {
      switch (n.t) {
        case "text":
          return escapeHtml(n.v);
        case "br":
          return "<br>";
        case "code":
          return `<code>${escapeHtml(n.v)}</code>`;
        case "strong":
        case "em":
          return `<${n.t}>${inlineHtml(n.c)}</${n.t}>`;
        case "link":
          return `<a href="${escapeHtml(n.href)}">${inlineHtml(n.c)}</a>`;
      }
    })
    .join("");
}

/** The tree as an HTML string (escaped), for tests and server-side previews. */
export function markdownToHtml(source: string): string {
  return parseMarkdown(source)
    .map((b) => {
      if (b.t === "p") return `<p>${inlineHtml(b.c)}</p>`;
      const items = b.items.map((item) => `<li>${inlineHtml(item)}</li>`).join("");
      if (b.t === "ul") return `<ul>${items}</ul>`;
      return b.start === 1 ? `<ol>${items}</ol>` : `<ol start="${b.start}">${items}</ol>`;
    })
    .join("");
}
