// The inbox widget mounted by handle.mountInbox(element): a bell button with the unread
// count (aria-expanded, aria-label "Inbox, 3 unread") opening a panel that lists the
// user's messages newest first, with "Load more" paging. Opening a message shows it and
// marks it READ; Archive hides it (ARCHIVED). Escape or a click outside closes the panel.

import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
import { actionButtons, icon, inAppContent, messageText } from "./content";
import type { Controller } from "./controller";
import { h, uid } from "./dom";
import { isUnread } from "./store";

const BELL = "M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9M10.3 21a1.94 1.94 0 0 0 3.4 0";

interface Row {
  li: HTMLLIElement;
  open: HTMLButtonElement;
  detail: HTMLDivElement;
  message: Message;
  /** What the row shows: the message copy and whether it is open. */
  shown?: [Message, boolean];
}

export function mountInbox(container: HTMLElement, c: Controller): () => void {
  const L = c.labels;
  const panelId = uid("inbox");
  const badge = h("span", { class: "herald-badge", "aria-hidden": "true", hidden: "" });
  const button = h("button", { type: "button", class: "herald-inbox-button", "aria-expanded": "false", "aria-controls": panelId }, icon(BELL), badge);
  const list = h("ul", { class: "herald-inbox-list", role: "list" });
  const note = h("p", { class: "herald-inbox-note", hidden: "" });
  const more = h("button", { type: "button", class: "herald-btn" }, L.loadMore);
  const footer = h("div", { class: "herald-inbox-footer", hidden: "" }, more);
  const headingId = uid("inbox-heading");
  const panel = h(
    "div",
    { class: "herald-inbox-panel", id: panelId, role: "region", "aria-labelledby": headingId, hidden: "" },
    h("h2", { class: "herald-inbox-header", id: headingId }, L.inbox),
    list,
    note,
    footer,
  );
  const root = h("div", { class: "herald-ui herald-inbox" }, button, panel);
  container.appendChild(root);

  const rows = new Map<string, Row>();
  const expanded = new Set<string>();
  let loaded = false;
  let failed = false;

  const time = (m: Message) =>
    m.createTime ? new Date(timestampMs(m.createTime)).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "";

  const buildRow = (m: Message): Row => {
    const content = inAppContent(m)!;
    const detailId = uid("detail");
    const open = h("button", { type: "button", class: "herald-inbox-open", "aria-expanded": "false", "aria-controls": detailId });
    const detail = h("div", { class: "herald-inbox-detail", id: detailId, hidden: "" });
    const on = c.handlers(m, false);
    const text = messageText(content, on.link, false);
    const archive = h("button", { type: "button", class: "herald-btn" }, L.archive);
    archive.addEventListener("click", () => {
      const next = rows.get(m.id)?.li.nextElementSibling?.querySelector<HTMLElement>(".herald-inbox-open");
      c.archive(rows.get(m.id)?.message ?? m);
      (next ?? button).focus();
    });
    const actions = actionButtons(content.actions, on.action, false) ?? h("div", { class: "herald-actions" });
    actions.append(archive);
    detail.append(text.el, actions);
    const li = h("li", { class: "herald-inbox-item" }, open, detail);
    const row: Row = { li, open, detail, message: m };
    open.addEventListener("click", () => {
      const show = !expanded.has(m.id);
      if (show) expanded.add(m.id);
      else expanded.delete(m.id);
      if (show) c.markRead(row.message);
      render();
    });
    return row;
  };

  const fillRow = (row: Row, m: Message) => {
    const show = expanded.has(m.id);
    row.message = m;
    if (row.shown?.[0] === m && row.shown[1] === show) return;
    row.shown = [m, show];
    const content = inAppContent(m)!;
    const unread = isUnread(m);
    row.li.className = unread ? "herald-inbox-item herald-unread" : "herald-inbox-item";
    row.open.setAttribute("aria-expanded", String(show));
    row.detail.hidden = !show;
    row.open.replaceChildren(
      ...(unread ? [h("span", { class: "herald-dot", "aria-hidden": "true" }), h("span", { class: "herald-sr" }, `${L.unread}: `)] : []),
      h("span", { class: "herald-inbox-title" }, content.title || content.body.split("\n")[0] || L.message),
      h("span", { class: "herald-time" }, time(m)),
    );
  };

  const render = () => {
    const n = c.store.unreadCount;
    badge.textContent = n > 99 ? "99+" : String(n);
    badge.hidden = n === 0;
    button.setAttribute("aria-label", n ? L.inboxButtonUnread.replace("{n}", String(n)) : L.inboxButton);
    if (panel.hidden) return;

    const messages = c.store.inbox();
    const keep = new Set(messages.map((m) => m.id));
    for (const [id, row] of rows) {
      if (!keep.has(id)) {
        row.li.remove();
        rows.delete(id);
      }
    }
    let at: ChildNode | null = list.firstChild;
    for (const m of messages) {
      let row = rows.get(m.id);
      if (!row) rows.set(m.id, (row = buildRow(m)));
      fillRow(row, m);
      if (row.li !== at) list.insertBefore(row.li, at);
      else at = at.nextSibling;
    }
    const text = failed ? L.loadError : loaded && !messages.length ? L.empty : "";
    note.textContent = text;
    note.hidden = !text;
    footer.hidden = !c.store.nextPageToken;
  };

  const load = (next: boolean) => {
    more.disabled = true;
    c.loadInbox(next)
      .then(() => {
        loaded = true;
        failed = false;
      })
      .catch((e: unknown) => {
        failed = true;
        c.events.emit("error", { operation: "inbox", error: e instanceof Error ? e : new Error(String(e)) });
      })
      .finally(() => {
        more.disabled = false;
        render();
      });
  };

  const setOpen = (open: boolean) => {
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) {
      render();
      if (!loaded) load(false);
    }
  };

  button.addEventListener("click", () => setOpen(panel.hasAttribute("hidden")));
  more.addEventListener("click", () => load(true));
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape" && !panel.hidden && root.contains(document.activeElement)) {
      setOpen(false);
      button.focus();
    }
  };
  const onPointer = (e: Event) => {
    if (!panel.hidden && e.target instanceof Node && !root.contains(e.target)) setOpen(false);
  };
  document.addEventListener("keydown", onKey);
  document.addEventListener("pointerdown", onPointer);
  const unlisten = c.onStoreChange(render);
  // The first page brings the unread count for the badge.
  load(false);

  return () => {
    unlisten();
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("pointerdown", onPointer);
    root.remove();
  };
}
