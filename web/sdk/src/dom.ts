// Building DOM without innerHTML: every string becomes a text node or an attribute.

type Child = Node | string | false | null | undefined;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Record<string, string | undefined> | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value !== undefined) el.setAttribute(name, value);
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

let counter = 0;

/** A document-unique id for aria-labelledby and friends. */
export function uid(prefix: string): string {
  return `herald-${prefix}-${++counter}`;
}

const FOCUSABLE =
  'a[href],button:not([disabled]),input:not([disabled]),select:not([disabled]),textarea:not([disabled]),[tabindex]:not([tabindex="-1"])';

export function focusables(root: HTMLElement): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => el.getClientRects().length > 0);
}

/**
 * Calls onTimeout after ms, counting only the time the pointer is not over el and focus
 * is not inside it (so the user can read and reach it). Returns a cancel function.
 */
export function autoDismiss(el: HTMLElement, ms: number, onTimeout: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let left = ms;
  let startedAt = 0;
  let hovered = false;
  let focused = false;
  const run = () => {
    if (hovered || focused || timer !== undefined) return;
    startedAt = Date.now();
    timer = setTimeout(onTimeout, left);
  };
  const hold = () => {
    if (timer === undefined) return;
    clearTimeout(timer);
    timer = undefined;
    left = Math.max(1_000, left - (Date.now() - startedAt));
  };
  const on = (type: string, f: () => void) => el.addEventListener(type, f);
  on("mouseenter", () => ((hovered = true), hold()));
  on("mouseleave", () => ((hovered = false), run()));
  on("focusin", () => ((focused = true), hold()));
  on("focusout", () => {
    // focusout fires before focus lands; look where it went on the next turn.
    setTimeout(() => {
      focused = el.contains(document.activeElement);
      run();
    });
  });
  run();
  return () => {
    clearTimeout(timer);
    timer = undefined;
    hovered = true;
  };
}
