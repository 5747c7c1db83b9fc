/**
 * A tiny Chrome DevTools Protocol client for the end-to-end tests: launches a headless Chromium with
 * a fresh temporary profile, opens pages (each in its own browser context, so storage is separate,
 * or as another tab of an open page's context, sharing its storage), evaluates script in them and
 * polls for conditions. `close` kills the browser and removes the profile. Only Deno built-ins:
 * `Deno.Command` and `WebSocket`.
 */

/** Where Chromium is: `/usr/bin/chromium` or a `chromium` on `PATH`; null when it is not installed. */
export function findChromium(): string | null {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "");
  for (const path of ["/usr/bin/chromium", ...dirs.map((dir) => `${dir}/chromium`)]) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not there
    }
  }
  return null;
}

/** Options of {@linkcode Browser.launch}. */
export interface LaunchOptions {
  /** The Chromium executable; default {@linkcode findChromium}. */
  path?: string;
  /** How long to wait for the DevTools endpoint, in milliseconds. */
  timeoutMs?: number;
}

/** Options of {@linkcode Page.waitFor}. */
export interface WaitOptions {
  /** Give up after this many milliseconds (default 8000). */
  timeoutMs?: number;
  /** What is awaited, for the error message (default: the expression). */
  what?: string;
}

// deno-lint-ignore no-explicit-any
type Json = any;

interface Pending {
  method: string;
  resolve: (value: Json) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** How long a command may go unanswered by default, in milliseconds. */
const COMMAND_TIMEOUT = 15_000;

type Listener = (params: Json) => void;

const STDERR_KEEP = 16_384;

/** A headless Chromium driven over one browser-level DevTools WebSocket (flattened sessions). */
export class Browser {
  #child: Deno.ChildProcess;
  #profile: string;
  #ws: WebSocket;
  #wsClosed: Promise<void>;
  #stderr: ReadableStreamDefaultReader<Uint8Array>;
  #stderrDone: Promise<void>;
  #stderrText: () => string;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  /** Event listeners by `sessionId method` ("" for the browser session). */
  #listeners = new Map<string, Set<Listener>>();
  #pages = new Set<Page>();
  /** Open pages per browser context this client created; disposed with the last one. */
  #contexts = new Map<string, number>();
  #closing: Promise<void> | null = null;

  private constructor(
    child: Deno.ChildProcess,
    profile: string,
    ws: WebSocket,
    wsClosed: Promise<void>,
    stderr: ReadableStreamDefaultReader<Uint8Array>,
    stderrDone: Promise<void>,
    stderrText: () => string,
  ) {
    this.#child = child;
    this.#profile = profile;
    this.#ws = ws;
    this.#wsClosed = wsClosed;
    this.#stderr = stderr;
    this.#stderrDone = stderrDone;
    this.#stderrText = stderrText;
    ws.onmessage = (e) => this.#onMessage(String(e.data));
  }

  /** What Chromium wrote to stderr (the last few kilobytes), for diagnostics. */
  get stderr(): string {
    return this.#stderrText();
  }

  /** Starts Chromium and connects to its DevTools endpoint. Everything is undone on failure. */
  static async launch(options: LaunchOptions = {}): Promise<Browser> {
    const path = options.path ?? findChromium();
    if (path === null) throw new Error("chromium is not installed");
    const timeoutMs = options.timeoutMs ?? 15_000;
    const profile = await Deno.makeTempDir({ prefix: "parley-e2e-chromium-" });
    const child = new Deno.Command(path, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--mute-audio",
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();

    // Drain stderr for the whole life of the browser (a full pipe would block Chromium), keeping
    // the tail for diagnostics and resolving the DevTools address from its "listening" line.
    const reader = child.stderr.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let resolveEndpoint!: (url: string) => void;
    let rejectEndpoint!: (error: Error) => void;
    const endpoint = new Promise<string>((resolve, reject) => {
      resolveEndpoint = resolve;
      rejectEndpoint = reject;
    });
    const stderrDone = (async () => {
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          text = (text + decoder.decode(value, { stream: true })).slice(-STDERR_KEEP);
          const match = text.match(/DevTools listening on (ws:\/\/\S+)/);
          if (match?.[1]) resolveEndpoint(match[1]);
        }
      } catch {
        // cancelled in close()
      }
      rejectEndpoint(new Error(`chromium exited before DevTools listened:\n${text}`));
    })();

    let timer: ReturnType<typeof setTimeout> | undefined;
    let ws: WebSocket | undefined;
    try {
      const url = await Promise.race([
        endpoint,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`chromium did not start within ${timeoutMs} ms:\n${text}`)),
            timeoutMs,
          );
        }),
      ]);
      ws = new WebSocket(url);
      const socket = ws;
      const wsClosed = new Promise<void>((resolve) =>
        socket.addEventListener("close", () => resolve())
      );
      await new Promise<void>((resolve, reject) => {
        socket.addEventListener("open", () => resolve(), { once: true });
        socket.addEventListener(
          "error",
          () => reject(new Error(`cannot connect to DevTools at ${url}`)),
          { once: true },
        );
      });
      const browser = new Browser(child, profile, socket, wsClosed, reader, stderrDone, () => text);
      socket.addEventListener("close", () => browser.#failAll("the DevTools connection closed"));
      return browser;
    } catch (error) {
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        const closed = new Promise((resolve) => ws!.addEventListener("close", resolve));
        ws.close();
        await closed;
      }
      await stopProcess(child, reader, stderrDone, 0);
      await removeDir(profile);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends a command; `sessionId` addresses a page, none the browser. Rejects when there is no
   * answer within `timeoutMs`.
   */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    timeoutMs = COMMAND_TIMEOUT,
  ): Promise<Json> {
    if (this.#ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`${method}: the DevTools connection is closed`));
    }
    const id = this.#nextId++;
    const message: Record<string, unknown> = { id, method, params };
    if (sessionId) message.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { method, resolve, reject, timer });
      this.#ws.send(JSON.stringify(message));
    });
  }

  /** Calls `listener` for each `method` event of a session; returns the unsubscribe function. */
  on(method: string, listener: Listener, sessionId = ""): () => void {
    const key = `${sessionId} ${method}`;
    let set = this.#listeners.get(key);
    if (!set) this.#listeners.set(key, set = new Set());
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Opens a page (about:blank), by default in a new browser context of its own: separate cookies
   * and storage, like another person's browser. With `tabOf`, it is another tab of that page's
   * browser: same context, same storage, same locks and broadcast channels.
   */
  async newPage(options: { isolated?: boolean; tabOf?: Page } = {}): Promise<Page> {
    const isolated = options.isolated ?? true;
    const contextId = options.tabOf
      ? options.tabOf.contextId
      : isolated
      ? (await this.send("Target.createBrowserContext", { disposeOnDetach: true }))
        .browserContextId as string
      : undefined;
    const { targetId } = await this.send("Target.createTarget", {
      url: "about:blank",
      ...(contextId ? { browserContextId: contextId } : {}),
    });
    if (contextId) this.#contexts.set(contextId, (this.#contexts.get(contextId) ?? 0) + 1);
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, targetId, sessionId, contextId);
    this.#pages.add(page);
    await page.init();
    return page;
  }

  /** The pages open now. */
  get pages(): Page[] {
    return [...this.#pages];
  }

  /** @internal Forgets a closing page; true when it was the last one of its browser context. */
  forget(page: Page): boolean {
    if (!this.#pages.delete(page) || !page.contextId) return false;
    const left = (this.#contexts.get(page.contextId) ?? 1) - 1;
    if (left > 0) this.#contexts.set(page.contextId, left);
    else this.#contexts.delete(page.contextId);
    return left === 0;
  }

  /**
   * Closes the browser: asks it to quit, kills it if it does not, closes the DevTools connection,
   * stops reading its stderr and removes the temporary profile. Idempotent; never throws.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.OPEN) {
      // Browser.close answers (or the socket just closes) as the browser goes away.
      await withTimeout(this.send("Browser.close").catch(() => {}), 2000);
    }
    await stopProcess(this.#child, this.#stderr, this.#stderrDone, 3000);
    if (this.#ws.readyState !== WebSocket.CLOSED) {
      if (this.#ws.readyState !== WebSocket.CLOSING) this.#ws.close();
    }
    await withTimeout(this.#wsClosed, 2000);
    this.#failAll("the browser was closed");
    this.#pages.clear();
    await removeDir(this.#profile);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #onMessage(data: string): void {
    const message = JSON.parse(data);
    if (typeof message.id === "number") {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.error) {
        pending.reject(
          new Error(`${pending.method}: ${message.error.message} ${message.error.data ?? ""}`),
        );
      } else pending.resolve(message.result);
      return;
    }
    const listeners = this.#listeners.get(`${message.sessionId ?? ""} ${message.method}`);
    for (const listener of listeners ?? []) listener(message.params);
  }

  #failAll(reason: string): void {
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new Error(`${pending.method}: ${reason}`));
    }
  }
}

/** One tab, attached with a flattened session. */
export class Page {
  /** Messages of JavaScript dialogs (alert, confirm, …) that opened; each is dismissed at once. */
  readonly dialogs: string[] = [];
  /** Uncaught exceptions of the page. */
  readonly errors: string[] = [];
  /**
   * What the page's console showed: `console.*` calls and the browser's own messages (a refused
   * resource, a Content-Security-Policy violation), as `level: text`.
   */
  readonly console: string[] = [];
  /** Requests the page made (`METHOD url`), once {@linkcode Page.recordRequests} was called. */
  readonly requests: string[] = [];

  constructor(
    readonly browser: Browser,
    readonly targetId: string,
    readonly sessionId: string,
    readonly contextId: string | undefined,
  ) {}

  /** @internal Enables the domains the helpers rely on. */
  async init(): Promise<void> {
    this.browser.on("Page.javascriptDialogOpening", (params) => {
      this.dialogs.push(String(params.message));
      void this.send("Page.handleJavaScriptDialog", { accept: false }).catch(() => {});
    }, this.sessionId);
    this.browser.on("Runtime.exceptionThrown", (params) => {
      const details = params.exceptionDetails ?? {};
      this.errors.push(String(details.exception?.description ?? details.text));
    }, this.sessionId);
    this.browser.on("Runtime.consoleAPICalled", (params) => {
      const text = (params.args ?? []).map((arg: Json) => arg.value ?? arg.description).join(" ");
      this.console.push(`${params.type}: ${text}`);
    }, this.sessionId);
    this.browser.on("Log.entryAdded", (params) => {
      this.console.push(`${params.entry.level}: ${params.entry.text}`);
    }, this.sessionId);
    await Promise.all([
      this.send("Page.enable"),
      this.send("Runtime.enable"),
      this.send("Log.enable"),
    ]);
  }

  /** Starts recording the requests the page makes into {@linkcode Page.requests}. */
  async recordRequests(): Promise<void> {
    this.browser.on("Network.requestWillBeSent", (params) => {
      this.requests.push(`${params.request.method} ${params.request.url}`);
    }, this.sessionId);
    await this.send("Network.enable");
  }

  /**
   * Makes every request of this page whose URL matches `urlPattern` (`*` wildcards) fail as if the
   * server were unreachable, until {@linkcode Page.stopFailingRequests}.
   */
  async failRequests(urlPattern: string): Promise<void> {
    this.#offFetch();
    this.#offFetch = this.browser.on("Fetch.requestPaused", (params) => {
      void this.send("Fetch.failRequest", {
        requestId: params.requestId,
        errorReason: "ConnectionRefused",
      }).catch(() => {});
    }, this.sessionId);
    await this.send("Fetch.enable", { patterns: [{ urlPattern, requestStage: "Request" }] });
  }

  /** Lets requests through again after {@linkcode Page.failRequests}. */
  async stopFailingRequests(): Promise<void> {
    await this.send("Fetch.disable");
    this.#offFetch();
  }

  #offFetch = () => {};

  /** Renders the page `width` CSS pixels wide (and `height` high), as a phone or a desktop. */
  async setViewport(width: number, height: number, mobile = width < 700): Promise<void> {
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile,
    });
  }

  /** Emulates `prefers-color-scheme` (`"light"`, `"dark"`, or `""` for the default). */
  async setColorScheme(scheme: "light" | "dark" | ""): Promise<void> {
    await this.send("Emulation.setEmulatedMedia", {
      features: [{ name: "prefers-color-scheme", value: scheme }],
    });
  }

  /** Writes a PNG of what the page shows now to `path`. */
  async screenshot(path: string): Promise<void> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    await Deno.writeFile(path, bytes);
  }

  /** Runs `source` in every document the page loads from now on, before the page's own scripts. */
  async addInitScript(source: string): Promise<void> {
    await this.send("Page.addScriptToEvaluateOnNewDocument", { source });
  }

  /** Sends a command to this page's session. */
  send(method: string, params: Record<string, unknown> = {}, timeoutMs?: number): Promise<Json> {
    return this.browser.send(method, params, this.sessionId, timeoutMs);
  }

  /** Resolves with the next `method` event of this page; rejects after `timeoutMs`. */
  nextEvent(method: string, timeoutMs = 10_000): Promise<Json> {
    let off = () => {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Promise<Json>((resolve, reject) => {
      off = this.browser.on(method, resolve, this.sessionId);
      timer = setTimeout(
        () => reject(new Error(`no ${method} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }).finally(() => {
      off();
      clearTimeout(timer);
    });
  }

  /** Navigates to `url` and waits for its load event. */
  async navigate(url: string, timeoutMs = 10_000): Promise<void> {
    const loaded = this.nextEvent("Page.loadEventFired", timeoutMs);
    try {
      const result = await this.send("Page.navigate", { url });
      if (result.errorText) throw new Error(`navigating to ${url}: ${result.errorText}`);
      await loaded;
    } finally {
      loaded.catch(() => {}); // settled either way; not awaited on failure
    }
  }

  /** Reloads the page and waits for its load event. */
  async reload(timeoutMs = 10_000): Promise<void> {
    const loaded = this.nextEvent("Page.loadEventFired", timeoutMs);
    try {
      await this.send("Page.reload", { ignoreCache: true });
      await loaded;
    } finally {
      loaded.catch(() => {});
    }
  }

  /**
   * Evaluates `expression` in the page (promises are awaited) and returns its value as JSON.
   * Throws what the page threw, or when there is no answer within `timeoutMs`.
   */
  async evaluate<T = Json>(expression: string, timeoutMs?: number): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
      userGesture: true,
    }, timeoutMs);
    if (result.exceptionDetails) {
      const details = result.exceptionDetails;
      throw new Error(
        `page threw: ${details.exception?.description ?? details.text} (in: ${expression})`,
      );
    }
    return result.result.value as T;
  }

  /**
   * Evaluates `predicate` every 50 ms until it is truthy and returns that value. Errors while the
   * page is (re)loading count as "not yet". Throws after `timeoutMs`, with the last value or error.
   */
  async waitFor<T = Json>(predicate: string, options: WaitOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? 8000;
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (true) {
      try {
        last = await this.evaluate<T>(predicate, Math.max(100, deadline - Date.now()));
        if (last) return last as T;
      } catch (error) {
        last = error;
      }
      if (Date.now() >= deadline) {
        const seen = last instanceof Error ? last.message : JSON.stringify(last);
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${
            options.what ?? predicate
          } (last: ${seen})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Types `text` into the focused element, as an input method would. */
  async insertText(text: string): Promise<void> {
    await this.send("Input.insertText", { text });
  }

  /** Presses and releases Enter in the focused element. */
  async pressEnter(): Promise<void> {
    await this.press("Enter");
  }

  /** Presses and releases a key (`Enter`, `Tab`, `ArrowDown`, …), with Shift when asked. */
  async press(key: keyof typeof KEYS, options: { shift?: boolean } = {}): Promise<void> {
    const [code, text] = KEYS[key];
    const event = {
      key,
      code: key,
      windowsVirtualKeyCode: code,
      nativeVirtualKeyCode: code,
      modifiers: options.shift ? 8 : 0,
    };
    await this.send("Input.dispatchKeyEvent", {
      type: "keyDown",
      ...(text ? { text } : {}),
      ...event,
    });
    await this.send("Input.dispatchKeyEvent", { type: "keyUp", ...event });
  }

  /**
   * Crashes the tab's renderer, as a crash would; the tab stays open, dead. The command is never
   * answered, so this does not wait for it.
   */
  crash(): void {
    this.send("Page.crash", {}, 2000).catch(() => {});
  }

  /** Closes the tab, and its browser context when it was the last tab there. */
  async close(): Promise<void> {
    const last = this.browser.forget(this);
    await this.browser.send("Target.closeTarget", { targetId: this.targetId }).catch(() => {});
    if (this.contextId && last) {
      await this.browser.send("Target.disposeBrowserContext", { browserContextId: this.contextId })
        .catch(() => {});
    }
  }
}

/** Keys {@linkcode Page.press} knows: virtual key code and the text they type. */
const KEYS = {
  Enter: [13, "\r"],
  Tab: [9, ""],
  Escape: [27, ""],
  ArrowUp: [38, ""],
  ArrowDown: [40, ""],
  ArrowLeft: [37, ""],
  ArrowRight: [39, ""],
  Home: [36, ""],
  End: [35, ""],
} as const;

/** Waits up to `ms` for `promise`; resolves either way. */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

/**
 * Waits up to `graceMs` for the process to exit, then kills it; then stops reading its stderr (a
 * helper process that outlived it may still hold the pipe open).
 */
async function stopProcess(
  child: Deno.ChildProcess,
  stderr: ReadableStreamDefaultReader<Uint8Array>,
  stderrDone: Promise<void>,
  graceMs: number,
): Promise<void> {
  let exited = false;
  const status = child.status.then(() => {
    exited = true;
  });
  if (graceMs > 0) await withTimeout(status, graceMs);
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
    await status;
  }
  await withTimeout(stderrDone, 1000);
  await stderr.cancel().catch(() => {});
  await stderrDone;
}

/** Removes a directory tree, retrying briefly while exiting helper processes still write to it. */
async function removeDir(path: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.remove(path, { recursive: true });
      return;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      if (attempt >= 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
