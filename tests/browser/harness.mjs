// The browser tests' shared harness (not a test file: `node --test` runs only *.test.mjs): the
// real daemon binary on a temp log, users file and state dir; Debian's chromium through
// playwright-core; Squid lines with varied but fixed values; waits on the page, each bounded.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

export const AXE = fs.readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = process.env.PROXYTAIL_BIN || path.join(ROOT, "target/debug/proxytail");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const USER = "admin";
export const PASS = "correct horse battery staple";
/** Upper bound of any single wait for the UI or the daemon (a failure bound, not a delay). */
export const WAIT = 20_000;

/** A port free on 127.0.0.1 right now (the daemon binds it a moment later). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address();
  srv.close();
  await once(srv, "close");
  return port;
}

/** Resolves when `child` exits, or rejects after `ms`. */
export function exited(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not exit within ${ms} ms`)), ms);
    child.once("exit", (code, signal) => { clearTimeout(timer); resolve({ code, signal }); });
  });
}

/** SIGTERM to `holder.child` (forgotten at once, so a second stop is a no-op), then its exit. */
function terminate(holder) {
  const child = holder.child;
  holder.child = null;
  if (!child) return Promise.resolve(null);
  child.kill("SIGTERM");
  return exited(child, WAIT);
}

/** The real daemon on a temp log, users file and state dir. */
export class Daemon {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
    this.log = path.join(dir, "access.log");
    this.users = path.join(dir, "users");
    this.state = path.join(dir, "state");
    this.stderr = "";
    this.child = null;
    /** Where entries come from: the log (a fleet central sets `--consume …` instead). */
    this.source = ["--access-log", this.log, "--format", "squid", "--from-start"];
  }

  /** Starts the binary and resolves once it says it listens (its own log line, not a port poll). */
  async start(extra = []) {
    const args = [
      ...extra,
      "--listen", `127.0.0.1:${this.port}`,
      ...this.source,
      "--users", this.users,
      "--state-dir", this.state,
    ];
    const child = spawn(BIN, args, {
      env: { ...process.env, PROXYTAIL_LOG: "info", NO_COLOR: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.child = child;
    let seen = "";
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`daemon not listening after ${WAIT} ms:\n${seen}`)), WAIT);
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (chunk) => {
        seen += chunk;
        this.stderr += chunk;
        if (seen.includes("proxytail listening")) { clearTimeout(timer); resolve(); }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`daemon exited (${code}) before listening:\n${seen}`));
      });
    });
  }

  /** SIGTERM, then the exit status (CONTRACT.md §5: 0 after a signal). */
  async stop() {
    return terminate(this);
  }
}

/** One line of Squid's native format (CONTRACT.md §4), `n` picks varied but fixed values. */
export function squidLine(n, base = Date.now() / 1000) {
  const clients = ["192.168.1.10", "192.168.1.23", "10.0.0.7", "192.168.1.42", "10.0.0.15"];
  const kinds = [
    ["CONNECT", "www.example.com:443", "TCP_TUNNEL/200", "HIER_DIRECT/93.184.216.34", "-"],
    ["GET", "http://deb.debian.org/debian/dists/bookworm/InRelease", "TCP_MISS/200", "HIER_DIRECT/151.101.2.132", "text/plain"],
    ["GET", "http://intranet.local/wiki/Start", "TCP_MEM_HIT/304", "HIER_NONE/-", "text/html"],
    ["CONNECT", "api.github.com:443", "TCP_TUNNEL/200", "HIER_DIRECT/140.82.121.6", "-"],
    ["POST", "http://telemetry.example.net/v1/collect", "TCP_MISS/503", "HIER_DIRECT/203.0.113.9", "text/html"],
    ["GET", "http://ads.example.org/banner.gif", "TCP_DENIED/403", "HIER_NONE/-", "text/html"],
    ["GET", "http://intranet.local/missing", "TCP_MISS/404", "HIER_DIRECT/10.0.0.2", "text/html"],
    ["CONNECT", "fonts.gstatic.com:443", "TCP_TUNNEL/200", "HIER_DIRECT/142.250.185.99", "-"],
  ];
  const [method, url, status, hier, type] = kinds[n % kinds.length];
  const ts = (base + n / 1000).toFixed(3);
  const elapsed = String((n * 37) % 2400 + 3).padStart(6);
  const bytes = (n * 7919) % 180_000 + 320;
  return `${ts} ${elapsed} ${clients[n % clients.length]} ${status} ${bytes} ${method} ${url} - ${hier} ${type}\n`;
}

/** Which of squidLine(n)'s kinds are CONNECT (indices 0, 3, 7 of 8). */
export const isConnect = (n) => [0, 3, 7].includes(n % 8);
export const isDenied = (n) => n % 8 === 5;

/** A daemon on a fresh log, state dir and users file holding USER with PASS (not started). */
export async function newDaemon(dir) {
  const daemon = new Daemon(dir, await freePort());
  fs.mkdirSync(daemon.state);
  fs.writeFileSync(daemon.log, "");
  const hash = execFileSync(BIN, ["hash-password"], { input: `${PASS}\n`, encoding: "utf8" }).trim();
  assert.match(hash, /^\$argon2id\$/);
  fs.writeFileSync(daemon.users, `# test user\n${USER}:${hash}\n`);
  return daemon;
}

/** Chromium with a profile in `dir` (headless, quiet, downloads accepted). */
export function launch(dir) {
  return chromium.launchPersistentContext(path.join(dir, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1400, height: 900 },
    acceptDownloads: true,
  });
}

/** Records every CSP violation the page meets into `window.__csp` (call before the first load). */
export async function recordCsp(page) {
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
}

/** Waits (bounded) until the header's last id reads `id`. */
export async function lastIdIs(page, id, timeout = WAIT) {
  await page.waitForFunction((want) => document.getElementById("last-id").textContent === String(want), id, { timeout });
}

/** WCAG 2 A/AA problems axe-core finds on the page as it is now, as readable strings. */
export async function accessibilityProblems(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(AXE);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  });
}

/** Ids of the rows in the DOM, top to bottom. */
export async function rowIds(page) {
  return page.$$eval("#rows .row", (rows) =>
    rows.sort((a, b) => Number(a.dataset.idx) - Number(b.dataset.idx)).map((r) => Number(r.dataset.id)));
}

/** Waits (bounded) until the rows in the DOM are exactly `ids`, top to bottom. */
export async function rowsAre(page, ids) {
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll("#rows .row")]
      .sort((a, b) => Number(a.dataset.idx) - Number(b.dataset.idx)).map((r) => Number(r.dataset.id));
    return JSON.stringify(got) === JSON.stringify(want);
  }, ids, { timeout: WAIT }).catch(async (e) => {
    assert.deepEqual(await rowIds(page), ids, e.message);
  });
}

/** Signs in through the form and waits until the stream is live. */
export async function signIn(page) {
  await page.waitForSelector("#sign-in-form", { state: "visible", timeout: WAIT });
  await page.fill("#login-user", USER);
  await page.fill("#login-pass", PASS);
  await page.click("#login-submit");
  await page.waitForSelector('#state[data-state="live"]', { timeout: WAIT });
}

/**
 * Waits (bounded) until the daemon's unauthenticated health reports `id` as its last id: every line
 * written so far was read, journaled (retention applied) and published. Each probe awaits the
 * answer; there is no event outside the daemon to await instead.
 */
export async function daemonReached(base, id) {
  const end = Date.now() + WAIT;
  let last;
  for (;;) {
    last = await fetch(`${base}/api/health`).then((r) => r.json()).catch((e) => String(e));
    if (last?.last_id === id) return;
    if (Date.now() > end) assert.fail(`the daemon did not reach id ${id} within ${WAIT} ms: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The oldest id the daemon's journal keeps (`/metrics`, with USER's credential). */
export async function journalOldestId(base) {
  const auth = `Basic ${Buffer.from(`${USER}:${PASS}`).toString("base64")}`;
  const res = await fetch(`${base}/metrics`, { headers: { authorization: auth } });
  assert.equal(res.status, 200);
  const m = /^proxytail_journal_oldest_id (\d+)$/m.exec(await res.text());
  assert.ok(m, "proxytail_journal_oldest_id in /metrics");
  return Number(m[1]);
}

// --- fleet (CONTRACT §10): a nats-server with JetStream for edges and a central -------------------

/** The nats-server binary (Debian's package; `NATS_SERVER` overrides), or null when not installed. */
export const NATS_SERVER = [process.env.NATS_SERVER, "/usr/sbin/nats-server", "/usr/bin/nats-server"]
  .find((p) => p && fs.existsSync(p)) ?? null;

/** One nats-server with JetStream on a free loopback port, its store in `dir`. */
export class NatsServer {
  constructor(dir) {
    this.dir = dir;
    this.port = 0;
    this.child = null;
    this.log = "";
  }

  get url() { return `nats://127.0.0.1:${this.port}`; }

  /** Starts it and resolves once it says it is ready (its own log line). */
  async start() {
    this.port = await freePort();
    const child = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", path.join(this.dir, "jetstream")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server not ready after ${WAIT} ms:\n${this.log}`)), WAIT);
      const seen = (chunk) => {
        this.log += chunk;
        if (this.log.includes("Server is ready")) { clearTimeout(timer); resolve(); }
      };
      for (const out of [child.stdout, child.stderr]) { out.setEncoding("utf8"); out.on("data", seen); }
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code}) before it was ready:\n${this.log}`));
      });
    });
  }

  /** SIGTERM to this process, then its exit (bounded). */
  async stop() {
    return terminate(this);
  }
}
