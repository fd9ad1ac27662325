// BANNER: a non-blocking strip pinned to the top or bottom of the viewport. It is a
// polite live region, filled one frame after it is inserted so screen readers announce
// it; auto_dismiss_after dismisses it (paused while hovered or focused).

import { BannerPosition, type InAppContent } from "../../gen/herald/common/v1/content_pb";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
import { popupCard, type MessageHandlers } from "./content";
import { autoDismiss, h } from "./dom";
import type { Labels } from "./labels";
import { durationMs } from "./time";

export interface Shown {
  /** Takes the pop-up off the page (no report). */
  close(): void;
}

export function bannerSlot(content: InAppContent): string {
  return content.bannerPosition === BannerPosition.BOTTOM ? "banner-bottom" : "banner-top";
}

export function showBanner(
  root: HTMLElement,
  message: Message,
  content: InAppContent,
  labels: Labels,
  on: MessageHandlers,
  displayed: () => void,
): Shown {
  const bottom = content.bannerPosition === BannerPosition.BOTTOM;
  const card = popupCard(message, content, labels, on);
  const el = h("div", {
    class: `herald-ui herald-banner herald-banner--${bottom ? "bottom" : "top"}`,
    role: "region",
    "aria-live": "polite",
    "aria-label": card.titleId ? undefined : labels.message,
    "aria-labelledby": card.titleId,
  });
  root.appendChild(el);
  let cancelAuto = () => {};
  const frame = requestAnimationFrame(() => {
    el.appendChild(card.el);
    const ms = durationMs(content.autoDismissAfter);
    if (ms > 0) cancelAuto = autoDismiss(el, ms, () => on.dismiss("auto"));
    displayed();
  });
  return {
    close() {
      cancelAnimationFrame(frame);
      cancelAuto();
      el.remove();
    },
  };
}
