import assert from "node:assert/strict";
import { test } from "node:test";
import { markdownToHtml as md, parseMarkdown, safeUrl } from "../src/markdown.ts";

test("paragraphs and line breaks", () => {
  assert.equal(md("one\ntwo\n\nthree"), "<p>one<br>two</p><p>three</p>");
  assert.equal(md("  trailing  \n  next  "), "<p>trailing<br>next</p>");
  assert.equal(md("a\\\nb"), "<p>a<br>b</p>");
  assert.equal(md("\r\nwindows\r\nline\r\n\r\nend"), "<p>windows<br>line</p><p>end</p>");
  assert.equal(md(""), "");
  assert.equal(md("\n\n  \n"), "");
});

test("strong, emphasis and code", () => {
  assert.equal(md("**bold** and __bold__"), "<p><strong>bold</strong> and <strong>bold</strong></p>");
  assert.equal(md("*em* and _em_"), "<p><em>em</em> and <em>em</em></p>");
  assert.equal(md("***both***"), "<p><strong><em>both</em></strong></p>");
  assert.equal(md("*a **b** c*"), "<p><em>a <strong>b</strong> c</em></p>");
  assert.equal(md("snake_case_name and 2 * 3 * 4"), "<p>snake_case_name and 2 * 3 * 4</p>");
  assert.equal(md("**unclosed"), "<p>**unclosed</p>");
  assert.equal(md("a*b*c"), "<p>a<em>b</em>c</p>");
  assert.equal(md("`x` and ``a ` b`` and ` padded `"), "<p><code>x</code> and <code>a ` b</code> and <code>padded</code></p>");
  assert.equal(md("`**not bold**`"), "<p><code>**not bold**</code></p>");
  assert.equal(md("`unclosed"), "<p>`unclosed</p>");
  assert.equal(md("\\*not em\\* \\[x\\]"), "<p>*not em* [x]</p>");
});

test("links: http, https and mailto only", () => {
  assert.equal(md("[Docs](https://example.com/a?b=1&c=2)"), '<p><a href="https://example.com/a?b=1&#38;c=2">Docs</a></p>');
  assert.equal(md('[x](http://e.com "title")'), '<p><a href="http://e.com">x</a></p>');
  assert.equal(md("[mail](mailto:a@b.c)"), '<p><a href="mailto:a@b.c">mail</a></p>');
  assert.equal(md("[**bold** link](https://e.com)"), '<p><a href="https://e.com"><strong>bold</strong> link</a></p>');
  assert.equal(md("<https://e.com/x>"), '<p><a href="https://e.com/x">https://e.com/x</a></p>');
  assert.equal(md("[a [nested] b](https://e.com)"), '<p><a href="https://e.com">a [nested] b</a></p>');
  assert.equal(md("[no url]"), "<p>[no url]</p>");
  assert.equal(md("[wiki](https://e.com/Foo_(bar))"), '<p><a href="https://e.com/Foo_(bar)">wiki</a></p>');
  assert.equal(md("[relative](/settings)"), "<p>relative</p>");
});

test("javascript:, data: and other schemes never become links", () => {
  for (const url of [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "javascript&#58;alert(1)",
    "&#106;avascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example",
  ]) {
    assert.equal(safeUrl(url), undefined, url);
    const html = md(`[click](${url})`);
    assert.ok(!html.includes("<a"), `${url} -> ${html}`);
    assert.ok(!/<script/i.test(html), html);
  }
  assert.equal(md("<javascript:alert(1)>"), "<p>&#60;javascript:alert(1)&#62;</p>");
  assert.equal(md("[x](javascript:alert(1))"), "<p>x</p>");
  assert.equal(md("[x](javascript:alert((1)))"), "<p>[x](javascript:alert((1)))</p>");
  // Nothing hides a scheme from the check: whitespace and control characters are refused.
  assert.equal(safeUrl("https://e.com/a b"), undefined);
  assert.equal(safeUrl("https://e.com/\u0000"), undefined);
  assert.equal(safeUrl("HTTPS://E.COM"), "HTTPS://E.COM");
});

test("raw HTML is escaped, never interpreted", () => {
  assert.equal(md("<script>alert(1)</script>"), "<p>&#60;script&#62;alert(1)&#60;/script&#62;</p>");
  assert.equal(md('<img src=x onerror="alert(1)">'), "<p>&#60;img src=x onerror=&#34;alert(1)&#34;&#62;</p>");
  assert.equal(md("**<b>bold</b>**"), "<p><strong>&#60;b&#62;bold&#60;/b&#62;</strong></p>");
  assert.equal(md("&amp; &lt;"), "<p>&#38;amp; &#38;lt;</p>");
  assert.equal(md("`<script>`"), "<p><code>&#60;script&#62;</code></p>");
  // A quote in a URL cannot break out of the attribute.
  assert.equal(md('[x](https://e.com/"onmouseover="alert(1))'), '<p><a href="https://e.com/&#34;onmouseover=&#34;alert(1)">x</a></p>');
  assert.equal(md('[x](https://e.com/" onclick="alert)'), "<p>[x](https://e.com/&#34; onclick=&#34;alert)</p>");
  assert.equal(md('[x](<https://e.com/" a=">)'), "<p>x</p>");
  assert.equal(md('[x](<https://e.com/"a=">)'), '<p><a href="https://e.com/&#34;a=&#34;">x</a></p>');
  const tree = JSON.stringify(parseMarkdown('[x](https://e.com/"onmouseover="alert(1)) <svg onload=alert(1)>'));
  assert.ok(!tree.includes('"t":"html"'));
});

test("lists", () => {
  assert.equal(md("- one\n- two\n* three"), "<ul><li>one</li><li>two</li><li>three</li></ul>");
  assert.equal(md("1. one\n2. **two**"), "<ol><li>one</li><li><strong>two</strong></li></ol>");
  assert.equal(md("3) three\n4) four"), '<ol start="3"><li>three</li><li>four</li></ol>');
  assert.equal(md("intro\n- a\n- b\n\nafter"), "<p>intro</p><ul><li>a</li><li>b</li></ul><p>after</p>");
  assert.equal(md("- a\n  continued\n- b"), "<ul><li>a<br>continued</li><li>b</li></ul>");
  assert.equal(md("- a\n1. b"), "<ul><li>a</li></ul><ol><li>b</li></ol>");
  assert.equal(md("In\n2024. a year"), "<p>In<br>2024. a year</p>");
  assert.equal(md("-not a list"), "<p>-not a list</p>");
  assert.equal(md("- [link](https://e.com)"), '<ul><li><a href="https://e.com">link</a></li></ul>');
});

test("what the subset leaves alone is shown as written", () => {
  assert.equal(md("# Heading"), "<p># Heading</p>");
  assert.equal(md("![alt](https://e.com/i.png)"), '<p>!<a href="https://e.com/i.png">alt</a></p>');
  assert.equal(md("> quote"), "<p>&#62; quote</p>");
});
