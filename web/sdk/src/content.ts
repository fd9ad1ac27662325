// The inside of a message, shared by every format and the inbox: title (plain text),
// body (the Markdown subset, see markdown.ts), image (https only) and action buttons,
// plus the close button and the "Don't show these" affordance of pop-ups.

import { ActionKind, type Action, type InAppContent } from "../../gen/herald/common/v1/content_pb";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
import { h, uid } from "./dom";
import type { Labels } from "./labels";
import { parseMarkdown, type Inline } from "./markdown";

export type DismissReason = "close" | "escape" | "backdrop" | "auto" | "action" | "mute";

/** What the user can do with a message on screen; the controller reports and acts. */
export interface MessageHandlers {
  action(action: Action): void;
  dismiss(reason: DismissReason): void;
  /** A link in the body was followed. */
  link(): void;
  /** "Don't show these"; undefined hides the affordance. */
  mute?: () => void;
}

export interface Card {
  el: HTMLElement;
  titleId?: string;
  bodyId?: string;
}

export function inAppContent(message: Message): InAppContent | undefined {
  return message.content?.body.case === "inApp" ? message.content.body.value : undefined;
}

export function isDismissible(content: InAppContent): boolean {
  return content.dismissible ?? true;
}

function inline(nodes: Inline[], parent: Node): void {
  for (const n of nodes) {
    switch (n.t) {
      case "text":
        parent.appendChild(document.createTextNode(n.v));
        break;
      case "br":
        parent.appendChild(h("br"));
        break;
      case "code":
        parent.appendChild(h("code", null, n.v));
        break;
      case "strong":
      case "em": {
        const el = h(n.t);
        inline(n.c, el);
        parent.appendChild(el);
        break;
      }
      case "link": {
        const external = !n.href.toLowerCase().startsWith("mailto:");
        const a = h("a", {
          href: n.href,
          target: external ? "_blank" : undefined,
          rel: external ? "noopener noreferrer" : undefined,
        });
        inline(n.c, a);
        parent.appendChild(a);
        break;
      }
    }
  }
}

/** The Markdown body as DOM (see markdown.ts for the subset). */
export function renderMarkdown(source: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  for (const b of parseMarkdown(source)) {
    if (b.t === "p") {
      const p = h("p");
      inline(b.c, p);
      frag.appendChild(p);
    } else {
      const list = b.t === "ul" ? h("ul") : h("ol", { start: b.start === 1 ? undefined : String(b.start) });
      for (const item of b.items) {
        const li = h("li");
        inline(item, li);
        list.appendChild(li);
      }
      frag.appendChild(list);
    }
  }
  return frag;
}

export function httpsUrl(url: string): boolean {
  try {
    return new URL(url).protocol === "https:";
  } catch {
    return false;
  }
}

/** Image, title (unless withTitle is false) and body; body links call onLink. */
export function messageText(content: InAppContent, onLink: () => void, withTitle = true): Card {
  const titleId = content.title && withTitle ? uid("title") : undefined;
  const bodyId = content.body ? uid("body") : undefined;
  const body = bodyId ? h("div", { class: "herald-body", id: bodyId }, renderMarkdown(content.body)) : undefined;
  body?.addEventListener("click", (e) => {
    if ((e.target as Element | null)?.closest?.("a")) onLink();
  });
  const el = h(
    "div",
    { class: "herald-text" },
    content.imageUrl && httpsUrl(content.imageUrl)
      ? h("img", { class: "herald-image", src: content.imageUrl, alt: "", referrerpolicy: "no-referrer" })
      : undefined,
    titleId ? h("div", { class: "herald-title", id: titleId }, content.title) : undefined,
    body,
  );
  return { el, titleId, bodyId };
}

/** The action buttons; DISMISS actions are left out when withDismiss is false (inbox). */
export function actionButtons(
  actions: Action[],
  onAction: (action: Action) => void,
  withDismiss = true,
): HTMLElement | undefined {
  const shown = actions.filter((a) => withDismiss || a.kind !== ActionKind.DISMISS);
  if (!shown.length) return undefined;
  return h(
    "div",
    { class: "herald-actions" },
    ...shown.map((action, i) => {
      const primary = i === 0 && action.kind !== ActionKind.DISMISS;
      const b = h("button", { type: "button", class: primary ? "herald-btn herald-btn--primary" : "herald-btn" }, action.label);
      b.addEventListener("click", () => onAction(action));
      return b;
    }),
  );
}

export function closeButton(label: string, onClose: () => void): HTMLButtonElement {
  const b = h("button", { type: "button", class: "herald-close", "aria-label": label, title: label });
  b.append(icon("M6 6l12 12M18 6L6 18"));
  b.addEventListener("click", onClose);
  return b;
}

export function icon(path: string): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", path);
  svg.append(p);
  return svg;
}

/** A pop-up's card: text, buttons, close button when dismissible, mute affordance. */
export function popupCard(message: Message, content: InAppContent, labels: Labels, on: MessageHandlers): Card {
  const text = messageText(content, on.link);
  const mute =
    on.mute && message.category
      ? h("button", { type: "button", class: "herald-mute" }, labels.mute)
      : undefined;
  mute?.addEventListener("click", () => on.mute?.());
  const el = h(
    "div",
    { class: "herald-card" },
    text.el,
    actionButtons(content.actions, on.action),
    mute,
    isDismissible(content) ? closeButton(labels.dismiss, () => on.dismiss("close")) : undefined,
  );
  return { el, titleId: text.titleId, bodyId: text.bodyId };
}
