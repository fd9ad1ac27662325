// Herald's web SDK: shows a user's in-app messages (banners, modals, tooltips, an inbox)
// from Herald's delivery service over gRPC-Web, reports what the user does with them,
// and sends events and traits to ingest. See web/README.md.
//
//   const herald = Herald.start({ token, deliveryUrl: "https://herald.example.com:50054" });
//   herald.mountInbox(document.querySelector("#inbox"));
//   herald.on("clicked", ({ message, action }) => …);

import { Controller, type HeraldEvents, type HeraldOptions } from "./controller";
import { mountInbox } from "./inbox";

export type { Action, InAppContent } from "../../gen/herald/common/v1/content_pb";
export type { Message } from "../../gen/herald/delivery/v1/delivery_pb";
export type { DismissReason } from "./content";
export type { HeraldEvents, HeraldOptions } from "./controller";
export type { Labels } from "./labels";
export type { ConnectionState } from "./stream";

declare const __HERALD_VERSION__: string;

/** The SDK's version (web/package.json). */
export const version: string = typeof __HERALD_VERSION__ === "string" ? __HERALD_VERSION__ : "dev";

export interface HeraldHandle {
  /** Listens to an event; returns a function that stops listening. */
  on<K extends keyof HeraldEvents>(name: K, listener: (payload: HeraldEvents[K]) => void): () => void;
  off<K extends keyof HeraldEvents>(name: K, listener: (payload: HeraldEvents[K]) => void): void;
  /** Puts the inbox button and panel into element; returns a function that removes them. */
  mountInbox(element: HTMLElement): () => void;
  /** The current unread count. */
  readonly unreadCount: number;
  /** No pop-ups for ms (kept in localStorage); 0 ends a snooze. Messages wait and show afterwards. */
  snooze(ms: number): void;
  /** When the snooze ends (ms since the epoch), or 0. */
  readonly snoozedUntil: number;
  /** Opts the user out of a category (server-enforced through their preferences). */
  muteCategory(category: string): Promise<void>;
  /** Records an event for the token's user. */
  track(name: string, properties?: object): Promise<{ duplicate: boolean }>;
  /** Merges traits into the token's user's traits (null removes one). */
  identify(traits: object): Promise<{ duplicate: boolean }>;
  /** Closes the stream and takes every pop-up and inbox off the page. */
  stop(): void;
}

export function start(options: HeraldOptions): HeraldHandle {
  const c = new Controller(options);
  const inboxes = new Set<() => void>();
  return {
    on: (name, listener) => c.events.on(name, listener),
    off: (name, listener) => c.events.off(name, listener),
    mountInbox(element) {
      const unmount = mountInbox(element, c);
      const remove = () => {
        inboxes.delete(remove);
        unmount();
      };
      inboxes.add(remove);
      return remove;
    },
    get unreadCount() {
      return c.store.unreadCount;
    },
    snooze: (ms) => c.snooze(ms),
    get snoozedUntil() {
      return c.snoozedUntil;
    },
    muteCategory: (category) => c.mute(category),
    track: (name, properties) => c.track(name, properties),
    identify: (traits) => c.identify(traits),
    stop() {
      for (const remove of [...inboxes]) remove();
      c.stop();
    },
  };
}
