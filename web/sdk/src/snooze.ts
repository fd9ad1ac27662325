// The snooze deadline, kept in localStorage so it holds across pages and reloads. Storage
// that is unavailable (private modes, sandboxed frames) keeps it for this page only.

const KEY = "herald:snooze-until";

export class Snooze {
  private until = 0;

  constructor() {
    try {
      const stored = Number(localStorage.getItem(KEY));
      if (Number.isFinite(stored)) this.until = stored;
    } catch {
      // no storage
    }
  }

  /** The time (ms since the epoch) pop-ups resume; 0 or past when not snoozed. */
  get untilMs(): number {
    return this.until;
  }

  set(untilMs: number): void {
    this.until = untilMs;
    try {
      if (untilMs > Date.now()) localStorage.setItem(KEY, String(untilMs));
      else localStorage.removeItem(KEY);
    } catch {
      // no storage
    }
  }
}
