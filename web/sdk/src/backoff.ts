// Exponential backoff with full jitter: attempt n waits a uniformly random time in
// [0, min(capMs, baseMs * 2^n)). reset() starts again from attempt 0.

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs: number,
    private readonly capMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The upper bound of the next delay, before jitter. */
  ceiling(): number {
    return Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
  }

  /** The delay before the next attempt; each call moves one attempt further. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    if (this.ceiling() < this.capMs) this.attempt++;
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after ms, or at once when signal aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}
