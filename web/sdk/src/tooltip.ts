// TOOLTIP: a bubble anchored to the element tooltip_target.selector finds, on the side
// placement asks for (AUTO: the side with the most room), kept in place on scroll and
// resize. The presenter shows it only once the element is on the page (see
// findTarget); if the element goes away while shown, the bubble hides until it is back.

import { TooltipPlacement, type InAppContent } from "../../gen/herald/common/v1/content_pb";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
import type { Shown } from "./banner";
import { popupCard, type MessageHandlers } from "./content";
import { autoDismiss, h } from "./dom";
import type { Labels } from "./labels";
import { place, type Side } from "./placement";
import { durationMs } from "./time";

/**
 * The element selector finds, if it is on the page and rendered (has a box). An
 * invalid selector throws a SyntaxError.
 */
export function findTarget(selector: string): Element | undefined {
  const el = document.querySelector(selector);
  return el && el.getClientRects().length > 0 ? el : undefined;
}

function side(p: TooltipPlacement): Side | "auto" {
  switch (p) {
    case TooltipPlacement.TOP:
      return "top";
    case TooltipPlacement.BOTTOM:
      return "bottom";
    case TooltipPlacement.LEFT:
      return "left";
    case TooltipPlacement.RIGHT:
      return "right";
    default:
      return "auto";
  }
}

export function showTooltip(
  root: HTMLElement,
  message: Message,
  content: InAppContent,
  labels: Labels,
  on: MessageHandlers,
  displayed: () => void,
  target: Element,
): Shown {
  const selector = content.tooltipTarget?.selector ?? "";
  const wanted = side(content.tooltipTarget?.placement ?? TooltipPlacement.AUTO);
  const card = popupCard(message, content, labels, on);
  const arrow = h("div", { class: "herald-arrow" });
  const el = h(
    "div",
    {
      class: "herald-ui herald-tooltip",
      role: "region",
      "aria-live": "polite",
      "aria-labelledby": card.titleId,
      "aria-label": card.titleId ? undefined : labels.message,
    },
    arrow,
  );
  root.appendChild(el);

  let frame = 0;
  const position = () => {
    frame = 0;
    if (!target.isConnected) target = document.querySelector(selector) ?? target;
    const rect = target.getBoundingClientRect();
    const visible = target.isConnected && target.getClientRects().length > 0;
    el.style.visibility = visible ? "" : "hidden";
    if (!visible) return;
    const p = place(rect, { width: el.offsetWidth, height: el.offsetHeight }, {
      width: document.documentElement.clientWidth,
      height: document.documentElement.clientHeight,
    }, wanted);
    el.className = `herald-ui herald-tooltip herald-tooltip--${p.side}`;
    el.style.top = `${Math.round(p.top)}px`;
    el.style.left = `${Math.round(p.left)}px`;
    arrow.style.cssText = p.side === "top" || p.side === "bottom" ? `left:${Math.round(p.arrow)}px` : `top:${Math.round(p.arrow)}px`;
  };
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(position);
  };
  window.addEventListener("scroll", schedule, { capture: true, passive: true });
  window.addEventListener("resize", schedule, { passive: true });
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape" && el.contains(document.activeElement) && card.el.querySelector(".herald-close")) {
      on.dismiss("escape");
    }
  };
  el.addEventListener("keydown", onKey);

  let cancelAuto = () => {};
  // Filled a frame later, as a live region is announced only when its content changes.
  frame = requestAnimationFrame(() => {
    el.appendChild(card.el);
    position();
    const ms = durationMs(content.autoDismissAfter);
    if (ms > 0) cancelAuto = autoDismiss(el, ms, () => on.dismiss("auto"));
    displayed();
  });

  return {
    close() {
      cancelAnimationFrame(frame);
      cancelAuto();
      window.removeEventListener("scroll", schedule, { capture: true });
      window.removeEventListener("resize", schedule);
      el.remove();
    },
  };
}
