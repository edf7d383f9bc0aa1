// Measurement, not a test: how the dashboard copes with a high entry rate. Starts the real daemon
// on a temp log, signs in with Debian's chromium, appends RATE lines per second for 10 s and
// reports frame statistics from inside the page (rAF intervals, long tasks), the rows in the DOM,
// and whether every line reached the page.
//
// Run: cargo build && node tests/browser/bench/rate.mjs [RATE=5000]
import { spawn, execFileSync } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const BIN = process.env.PROXYTAIL_BIN || path.join(ROOT, "target/debug/proxytail");
const RATE = Number(process.argv[2] || 5000);
const SECONDS = 10;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxytail-bench-"));
const log = path.join(dir, "access.log");
fs.writeFileSync(log, "");
fs.mkdirSync(path.join(dir, "state"));
const hash = execFileSync(BIN, ["hash-password"], { input: "pw\n", encoding: "utf8" }).trim();
fs.writeFileSync(path.join(dir, "users"), `bench:${hash}\n`);
const srv = net.createServer().listen(0, "127.0.0.1");
await once(srv, "listening");
const { port } = srv.address();
srv.close();
await once(srv, "close");

const daemon = spawn(BIN, ["--listen", `127.0.0.1:${port}`, "--access-log", log, "--users", path.join(dir, "users"),
  "--state-dir", path.join(dir, "state"), "--from-start", "--history", "20000"],
{ stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
await new Promise((resolve, reject) => {
  let seen = "";
  const timer = setTimeout(() => reject(new Error(`daemon not listening:\n${seen}`)), 20_000);
  daemon.stderr.on("data", (c) => { seen += c; if (seen.includes("proxytail listening")) { clearTimeout(timer); resolve(); } });
});

const context = await chromium.launchPersistentContext(path.join(dir, "profile"), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  viewport: { width: 1400, height: 900 },
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.fill("#login-user", "bench");
  await page.fill("#login-pass", "pw");
  await page.click("#login-submit");
  await page.waitForSelector('#state[data-state="live"]', { timeout: 20_000 });
  const frames = page.evaluate((seconds) => new Promise((done) => {
    const gaps = [];
    let long = 0;
    let longMs = 0;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) { long++; longMs += e.duration; } })
      .observe({ type: "longtask" });
    const t0 = performance.now();
    let last = t0;
    const frame = (t) => {
      gaps.push(t - last);
      last = t;
      if (t - t0 < seconds * 1000) { requestAnimationFrame(frame); return; }
      gaps.sort((a, b) => a - b);
      done({
        fps: +(gaps.length / seconds).toFixed(1),
        p50FrameMs: Math.round(gaps[gaps.length >> 1]),
        p95FrameMs: Math.round(gaps[Math.floor(gaps.length * 0.95)]),
        worstFrameMs: Math.round(gaps.at(-1)),
        longTasks: long,
        longTaskMs: Math.round(longMs),
        domRows: document.querySelectorAll("#rows .row").length,
      });
    };
    requestAnimationFrame(frame);
  }), SECONDS);
  let n = 0;
  const base = Date.now() / 1000;
  const writer = setInterval(() => {
    let text = "";
    for (let i = 0; i < RATE / 10; i++) {
      n++;
      text += `${(base + n / 1000).toFixed(3)}     12 10.0.0.${n % 50} TCP_TUNNEL/200 ${n} CONNECT host${n % 97}.example:443 - HIER_DIRECT/192.0.2.1 -\n`;
    }
    fs.appendFileSync(log, text);
  }, 100);
  const result = await frames;
  clearInterval(writer);
  await page.waitForFunction((want) => document.getElementById("last-id").textContent === String(want), n, { timeout: 60_000 });
  console.log(JSON.stringify({
    ...result,
    linesWritten: n,
    linesPerSecond: Math.round(n / SECONDS),
    lastIdShown: Number(await page.textContent("#last-id")),
    missed: Number(await page.textContent("#missed")),
  }));
} finally {
  await context.close();
  daemon.kill("SIGTERM");
  await once(daemon, "exit");
  fs.rmSync(dir, { recursive: true, force: true });
}
