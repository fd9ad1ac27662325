// The demo app: a pretend product ("Acme Reports") using the web SDK the way a customer
// would, with a script tag (window.Herald) and an end-user token. herald dev mints the
// token for a new demo user (POST /dev/demo-user); the page keeps it for the tab's
// session, so a reload is the same user.

interface HeraldHandle {
  track(name: string, properties?: Record<string, unknown>): Promise<unknown>;
  identify(traits: Record<string, unknown>): Promise<unknown>;
  mountInbox(element: HTMLElement): void;
  snooze(ms: number): void;
  on(event: string, callback: (...args: any[]) => void): void;
}

interface HeraldStatic {
  start(options: Record<string, unknown>): HeraldHandle;
}

declare const Herald: HeraldStatic;

interface DevConfig {
  ingest: string;
  delivery: string;
}

interface DemoUser {
  user_id: string;
  token: string;
}

const SESSION = "herald.demo.user";

function $(id: string): HTMLElement {
  return document.getElementById(id) as HTMLElement;
}

async function demoUser(): Promise<DemoUser> {
  const kept = sessionStorage.getItem(SESSION);
  if (kept) return JSON.parse(kept) as DemoUser;
  const response = await fetch("/dev/demo-user", { method: "POST" });
  if (!response.ok) throw new Error(`POST /dev/demo-user answered ${response.status}`);
  const user = (await response.json()) as DemoUser;
  sessionStorage.setItem(SESSION, JSON.stringify(user));
  return user;
}

async function main(): Promise<void> {
  const status = $("status");
  const config = (await (await fetch("/dev/config.json")).json()) as DevConfig;
  const user = await demoUser();
  const herald = Herald.start({
    token: user.token,
    deliveryUrl: config.delivery,
    ingestUrl: config.ingest,
    onAction: (action: { id: string }) => {
      if (action.id === "create-report") {
        openReports();
        void herald.track("report_created", { from: "welcome" }).catch(report);
      }
      if (action.id === "see-plans") void herald.track("pricing_viewed", { from: "banner" });
    },
  });
  herald.mountInbox($("inbox"));
  let connection = "connecting";
  const show = () => {
    status.textContent = `Signed in as ${user.user_id} · stream ${connection}`;
    status.dataset.connection = connection;
  };
  herald.on("connection", (state: string) => {
    connection = state;
    show();
  });
  show();
  // The demo campaigns target users with this trait (set once per demo user).
  if (!sessionStorage.getItem(`${SESSION}.identified`)) {
    await herald.identify({ demo_app: true });
    sessionStorage.setItem(`${SESSION}.identified`, "1");
  }
  const report = (e: unknown) => {
    status.textContent = `Could not send the event: ${e instanceof Error ? e.message : String(e)}`;
  };

  const openReports = () => {
    $("reports").hidden = false;
    void herald.track("reports_opened").catch(report);
  };
  ($("signup") as HTMLFormElement).addEventListener("submit", (e) => {
    e.preventDefault();
    const firstName = ($("first-name") as HTMLInputElement).value.trim();
    void (async () => {
      // Traits first (the workspace lets user tokens identify their own user), so the
      // welcome message greets the user by name.
      if (firstName) await herald.identify({ first_name: firstName }).catch(report);
      await herald.track("signed_up", { plan: "trial" }).catch(report);
    })();
  });
  $("open-reports").addEventListener("click", openReports);
  $("create-report").addEventListener("click", () => void herald.track("report_created").catch(report));
  $("pricing-button").addEventListener("click", () => void herald.track("pricing_viewed").catch(report));
  $("note-button").addEventListener("click", () => void herald.track("note_requested").catch(report));
  $("snooze-button").addEventListener("click", () => herald.snooze(60_000));
}

main().catch((e) => {
  const status = document.getElementById("status");
  if (status) status.textContent = `The demo could not start: ${e instanceof Error ? e.message : String(e)}`;
});
