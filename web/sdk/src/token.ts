// The end-user token sent as `authorization: Bearer <token>`. A function token is called
// once and its answer reused until invalidate() (after UNAUTHENTICATED) asks for a fresh
// one; a plain string cannot be refreshed.

export type TokenOption = string | (() => Promise<string>);

export class TokenSource {
  private pending: Promise<string> | undefined;

  constructor(private readonly token: TokenOption) {}

  get refreshable(): boolean {
    return typeof this.token === "function";
  }

  get(): Promise<string> {
    const token = this.token;
    if (typeof token === "string") return Promise.resolve(token);
    if (!this.pending) {
      const p = Promise.resolve()
        .then(token)
        .then((t) => {
          if (typeof t !== "string" || t === "") throw new Error("Herald: the token function returned no token");
          return t;
        });
      // A failed call is not cached: the next get() asks again.
      p.catch(() => {
        if (this.pending === p) this.pending = undefined;
      });
      this.pending = p;
    }
    return this.pending;
  }

  invalidate(): void {
    this.pending = undefined;
  }
}
