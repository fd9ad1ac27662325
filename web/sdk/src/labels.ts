// The SDK's own words, in English by default; pass `labels` to start() to translate.
// `{n}` in inboxButton is replaced by the unread count.

export interface Labels {
  message: string;
  dismiss: string;
  inbox: string;
  inboxButton: string;
  inboxButtonUnread: string;
  unread: string;
  empty: string;
  loadMore: string;
  loadError: string;
  archive: string;
  mute: string;
}

export const DEFAULT_LABELS: Labels = {
  message: "Message",
  dismiss: "Dismiss",
  inbox: "Inbox",
  inboxButton: "Inbox",
  inboxButtonUnread: "Inbox, {n} unread",
  unread: "Unread",
  empty: "No messages",
  loadMore: "Load more",
  loadError: "Could not load messages.",
  archive: "Archive",
  mute: "Don't show these",
};
