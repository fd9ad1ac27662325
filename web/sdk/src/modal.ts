// MODAL: a centred dialog over a backdrop (role="dialog", aria-modal="true", labelled by
// its title and described by its body). Focus moves into it (first button, else the
// dialog) and is trapped there: Tab and Shift-Tab cycle, focus leaving is pulled back.
// Escape and a click on the backdrop dismiss it when it is dismissible. On close, focus
// returns to where it was. The presenter shows one modal at a time.

import type { InAppContent } from "../../gen/herald/common/v1/content_pb";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
import type { Shown } from "./banner";
import { isDismissible, popupCard, type MessageHandlers } from "./content";
import { focusables, h } from "./dom";
import type { Labels } from "./labels";

export function showModal(
  root: HTMLElement,
  message: Message,
  content: InAppContent,
  labels: Labels,
  on: MessageHandlers,
  displayed: () => void,
): Shown {
  const dismissible = isDismissible(content);
  const card = popupCard(message, content, labels, on);
  const dialog = h(
    "div",
    {
      class: "herald-modal",
      role: "dialog",
      "aria-modal": "true",
      "aria-labelledby": card.titleId,
      "aria-label": card.titleId ? undefined : labels.message,
      "aria-describedby": card.bodyId,
      tabindex: "-1",
    },
    card.el,
  );
  const backdrop = h("div", { class: "herald-ui herald-backdrop" }, dialog);
  const previous = document.activeElement;

  backdrop.addEventListener("click", (e) => {
    if (e.target === backdrop && dismissible) on.dismiss("backdrop");
  });
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape" && dismissible) {
      e.stopPropagation();
      on.dismiss("escape");
    } else if (e.key === "Tab") {
      const items = focusables(dialog);
      if (!items.length) {
        e.preventDefault();
        dialog.focus();
        return;
      }
      const first = items[0]!;
      const last = items[items.length - 1]!;
      const active = document.activeElement;
      if (e.shiftKey && (active === first || active === dialog || !dialog.contains(active))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (active === last || !dialog.contains(active))) {
        e.preventDefault();
        first.focus();
      }
    }
  };
  const onFocus = (e: FocusEvent) => {
    if (e.target instanceof Node && !dialog.contains(e.target)) dialog.focus();
  };
  document.addEventListener("keydown", onKey, true);
  document.addEventListener("focusin", onFocus, true);

  root.appendChild(backdrop);
  const first = card.el.querySelector<HTMLElement>(".herald-actions button") ?? dialog;
  first.focus();
  displayed();

  return {
    close() {
      document.removeEventListener("keydown", onKey, true);
      document.removeEventListener("focusin", onFocus, true);
      backdrop.remove();
      if (previous instanceof HTMLElement && previous.isConnected) previous.focus();
    },
  };
}
