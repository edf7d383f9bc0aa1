// End-to-end test of the dashboard in a real browser (Debian's chromium through playwright-core)
// against the real daemon binary: sign-in (wrong and right), live entries, the entry dialog,
// pause/resume, a daemon restart while lines are appended (ids stay contiguous in the export), CSV
// export of a filtered view, a phone-sized layout, sign-out; no CSP violation or page error
// throughout. The filter box itself is tested in filters.test.mjs.
// Sessions (CONTRACT §11, RELIABILITY 72): no password in sessionStorage/localStorage, the session
// cookie HttpOnly + SameSite=Strict, a reload and a daemon restart resume without the form, and
// sign-out ends the session (the old cookie then gets 401 from /api/ws-token).
// Saves docs/dashboard.png. Installs nothing: `.ci/run` provides chromium and `npm ci`.
//
// Run: cargo build && (cd tests/browser && npm ci) && node --test tests/browser/
// Env: PROXYTAIL_BIN (default target/debug/proxytail), CHROMIUM (default /usr/bin/chromium).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  ROOT, USER, PASS, WAIT, newDaemon, launch, recordCsp, squidLine, isConnect, daemonReached, journalOldestId,
  lastIdIs as lastIdIsOn, accessibilityProblems as problemsOn, rowIds as rowIdsOn, rowsAre as rowsAreOn,
} from "./harness.mjs";

describe("dashboard in chromium against the real daemon", { timeout: 240_000 }, () => {
  let dir, daemon, context, page, base;
  let written = 0;
  const pageErrors = [];
  const consoleErrors = [];
  /** URLs of the WebSockets the page opened, in order. */
  const sockets = [];
  /** The page's periodic `ping` messages (sent 30 s into a connection or later) and the daemon's `pong`. */
  const pings = { sent: 0 };
  pings.pong = new Promise((resolve) => { pings.answered = resolve; });

  /** Appends lines numbered written+1 … written+count to the log. */
  function append(count) {
    let text = "";
    for (let i = 0; i < count; i++) text += squidLine(++written);
    fs.appendFileSync(daemon.log, text);
  }

  const lastIdIs = (id, timeout) => lastIdIsOn(page, id, timeout);
  const query = (url) => Object.fromEntries(new URL(url).searchParams);
  const accessibilityProblems = () => problemsOn(page);
  const rowsAre = (ids) => rowsAreOn(page, ids);
  const rowIds = () => rowIdsOn(page);

  /** Every key and value of sessionStorage and localStorage that holds the password in any form. */
  async function storedSecrets() {
    const secrets = [PASS, Buffer.from(`${USER}:${PASS}`).toString("base64"), encodeURIComponent(PASS)];
    const all = await page.evaluate(() => {
      const found = [];
      for (const store of [sessionStorage, localStorage]) {
        for (let i = 0; i < store.length; i++) {
          const key = store.key(i);
          found.push(key, store.getItem(key));
        }
      }
      return found;
    });
    return all.filter((text) => secrets.some((s) => text.includes(s)));
  }

  /** The session cookie as the browser holds it, or undefined. */
  async function sessionCookie() {
    return (await context.cookies(base)).find((c) => c.name === "proxytail_session");
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxytail-browser-"));
    daemon = await newDaemon(dir);
    await daemon.start();
    base = `http://127.0.0.1:${daemon.port}`;
    context = await launch(dir);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("websocket", (ws) => {
      sockets.push(ws.url());
      // A `ping` right after opening probes a new filter's subscription; the periodic one comes later.
      const opened = Date.now();
      let periodic = false;
      ws.on("framesent", (f) => {
        if (f.payload === "ping" && Date.now() - opened >= 29_000) { periodic = true; pings.sent++; }
      });
      ws.on("framereceived", (f) => { if (f.payload === "pong" && periodic) pings.answered(); });
    });
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    // Every CSP violation the page meets is recorded (our own scripts, styles, the WebSocket).
    await recordCsp(page);
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (daemon?.child) {
      const child = daemon.child;
      await daemon.stop().catch(() => child.kill("SIGKILL"));
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("serves the page with a strict CSP and security headers", async () => {
    const res = await page.goto(base + "/");
    assert.equal(res.status(), 200);
    const h = res.headers();
    assert.match(h["content-type"], /^text\/html/);
    assert.equal(h["cache-control"], "no-cache");
    assert.equal(h["x-content-type-options"], "nosniff");
    assert.equal(h["referrer-policy"], "no-referrer");
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
      "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]) {
      assert.ok(h["content-security-policy"].includes(d), d);
    }
    await page.waitForSelector("#sign-in-form", { timeout: WAIT });
  });

  it("sign-in form meets WCAG 2.1 A/AA (axe-core)", async () => {
    assert.deepEqual(await accessibilityProblems(), []);
  });

  it("says so when the password is wrong", async () => {
    await page.fill("#login-user", USER);
    await page.fill("#login-pass", "wrong password");
    await page.click("#login-submit");
    await page.waitForFunction(() => document.getElementById("login-error").textContent.includes("Wrong user name or password"), null, { timeout: WAIT });
    assert.equal(await page.isVisible("#dashboard"), false);
  });

  it("signs in and shows appended lines live", async () => {
    await page.fill("#login-user", USER);
    await page.fill("#login-pass", PASS);
    await page.click("#login-submit");
    await page.waitForSelector('#state[data-state="live"]', { timeout: WAIT });
    assert.equal(await page.isVisible("#sign-in"), false);
    assert.equal(await page.inputValue("#login-pass"), "", "the password is not left in the form");
    append(16);
    await page.waitForSelector('#rows .row[data-id="16"]', { timeout: WAIT });
    await lastIdIs(16);
    assert.deepEqual(await rowIds(), Array.from({ length: 16 }, (_, i) => 16 - i), "newest first, ids 16…1");
    const row = page.locator('#rows .row[data-id="5"]');
    assert.match(await row.locator(".c-status").textContent(), /403 Forbidden/);
    assert.match(await row.getAttribute("class"), /st-denied/);
    const klass = (id) => page.locator(`#rows .row[data-id="${id}"]`).getAttribute("class");
    assert.match(await klass(3), /st-2xx/);
    assert.match(await klass(2), /st-3xx/);
    assert.match(await klass(6), /st-4xx/);
    assert.match(await klass(4), /st-5xx/);
  });

  it("keeps no password in browser storage; the session cookie is HttpOnly and SameSite=Strict", async () => {
    assert.deepEqual(await storedSecrets(), []);
    const cookie = await sessionCookie();
    assert.ok(cookie, "a session cookie is set");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(cookie.path, "/");
    assert.equal(cookie.secure, false, "plain HTTP on loopback");
    assert.ok(cookie.expires > Date.now() / 1000, "it expires");
    assert.equal(await page.evaluate(() => document.cookie), "", "invisible to scripts");
  });

  it("stays signed in across a reload, without the form", async () => {
    assert.deepEqual(await page.evaluate(() => window.__csp), [], "no CSP violation before the reload");
    const sessionRequests = [];
    page.on("request", (r) => { if (r.url().includes("/api/session")) sessionRequests.push(r.method()); });
    await page.reload();
    await page.waitForSelector('#state[data-state="live"]', { timeout: WAIT });
    await lastIdIs(16);
    assert.equal(await page.isVisible("#sign-in"), false, "no sign-in form");
    assert.equal(await page.textContent("#user-name"), USER);
    assert.deepEqual(sessionRequests, ["GET"], "resumed from the cookie, no new sign-in");
    assert.deepEqual(await storedSecrets(), []);
  });

  it("dashboard meets WCAG 2.1 A/AA (axe-core), in light and dark schemes", async () => {
    assert.deepEqual(await accessibilityProblems(), [], "light");
    await page.emulateMedia({ colorScheme: "dark" });
    assert.deepEqual(await accessibilityProblems(), [], "dark");
    await page.emulateMedia({ colorScheme: "light" });
  });

  it("opens an entry's every field from the keyboard", async () => {
    await page.focus("#entries");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#detail[open]", { timeout: WAIT });
    assert.equal(await page.textContent("#detail-title"), "Entry 15");
    const keys = await page.$$eval("#detail-fields dt", (dts) => dts.map((d) => d.textContent));
    for (const k of ["id", "timestamp", "client_ip", "method", "destination", "status", "bytes", "ts",
      "elapsed_ms", "result", "code", "user", "hierarchy", "peer", "content_type"]) {
      assert.ok(keys.includes(k), `dialog shows ${k}`);
    }
    await page.keyboard.press("Escape");
    await page.waitForSelector("#detail:not([open])", { state: "attached", timeout: WAIT });
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), "15", "focus returns to the row");
    // Its id (a click on its client, destination, status or user adds a quick filter instead).
    await page.click('#rows .row[data-id="12"] .c-id');
    await page.waitForSelector("#detail[open]", { timeout: WAIT });
    assert.equal(await page.textContent("#detail-title"), "Entry 12");
    await page.click("#detail-close");
    await page.waitForSelector("#detail:not([open])", { state: "attached", timeout: WAIT });
  });

  it("keeps counting while paused and shows everything on resume", async () => {
    await page.click("#pause");
    assert.equal(await page.getAttribute("#pause", "aria-pressed"), "true");
    append(5);
    await page.waitForFunction(() => document.getElementById("total").textContent === "21", null, { timeout: WAIT });
    await page.waitForFunction(() => document.getElementById("paused-note").textContent.includes("5 new"), null, { timeout: WAIT });
    assert.equal(await page.$('#rows .row[data-id="21"]'), null, "paused: new rows are not shown");
    assert.equal((await rowIds())[0], 16);
    await page.click("#pause");
    await page.waitForSelector('#rows .row[data-id="21"]', { timeout: WAIT });
    assert.deepEqual((await rowIds()).slice(0, 6), [21, 20, 19, 18, 17, 16]);
  });

  it("loses nothing across a daemon restart while lines are appended", async () => {
    // Every connection state the page shows from here on, as the user (and a screen reader) gets it.
    await page.evaluate(() => {
      window.__states = [];
      const el = document.getElementById("state");
      new MutationObserver(() => window.__states.push(`${el.dataset.state}: ${el.textContent}`))
        .observe(el, { childList: true, characterData: true, subtree: true, attributes: true });
    });
    append(100); // read (or not yet) by the running daemon
    const stopping = daemon.stop();
    append(100); // while it shuts down
    const { code, signal } = await stopping;
    assert.equal(code, 0, `clean exit after SIGTERM (signal ${signal})\n${daemon.stderr.slice(-2000)}`);
    append(50); // while it is down
    await daemon.start();
    append(50); // after it is back
    const last = written;
    await lastIdIs(last, 60_000);
    const states = await page.evaluate(() => window.__states);
    assert.ok(states.includes("waiting: The daemon is restarting; reconnecting…"), states.join("\n"));
    assert.equal(states.at(-1), "live: Live — reconnected", states.join("\n"));
    assert.ok(sockets.length >= 2, `reconnected: ${sockets.length} sockets`);
    assert.ok(query(sockets[0]).backlog, "the first connection asks for a backlog");
    const resumed = query(sockets.at(-1));
    assert.ok(Number(resumed.since) >= 21 && Number(resumed.since) < last, `resumed with since (${resumed.since})`);
    assert.notEqual(query(sockets[0]).token, resumed.token, "a fresh token for each connection");
    assert.equal(await page.isVisible("#gaps"), false, "no gap was reported");
    assert.equal(await page.textContent("#missed"), "0");
    assert.ok(!states.some((s) => s.startsWith("signed-out")), `the session outlived the restart:\n${states.join("\n")}`);
    const ids = await rowIds();
    assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => last - i), "rows are contiguous");

    const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), page.click("#export-ndjson")]);
    const exported = fs.readFileSync(await download.path(), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(exported.map((e) => e.id), Array.from({ length: last }, (_, i) => i + 1), "every id once, in order");
    assert.equal(exported[4].result, "TCP_DENIED");
    assert.equal(exported[0].method, "GET");
    assert.equal(exported[0].client_ip, "192.168.1.23");
  });

  it("exports what is shown as CSV", async () => {
    // The daemon filters (CONTRACT §6); the table refills with the matches held.
    await page.fill("#f-expr", "method:CONNECT");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => new URL(location.href).searchParams.get("filter") === "method:CONNECT", null, { timeout: WAIT });
    await page.waitForFunction((n) => document.getElementById("total").textContent === String(n),
      Array.from({ length: written }, (_, i) => i + 1).filter(isConnect).length, { timeout: WAIT });
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), page.click("#export-csv")]);
    const lines = fs.readFileSync(await download.path(), "utf8").trim().split("\r\n");
    assert.match(lines[0], /^id,timestamp,client_ip,method,destination,status,bytes,ts,elapsed_ms,result,code,user,hierarchy,peer,content_type/);
    const want = Array.from({ length: written }, (_, i) => i + 1).filter(isConnect);
    assert.equal(lines.length - 1, want.length);
    assert.ok(lines.slice(1).every((l) => l.split(",")[3] === "CONNECT"));
    await page.fill("#f-expr", "");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => !new URL(location.href).searchParams.has("filter"), null, { timeout: WAIT });
    await lastIdIs(written);
  });

  it("follows the tail when asked, oldest on top and scrolled to the newest", async () => {
    await page.selectOption("#order", "tail");
    await page.waitForFunction((last) => {
      const rows = [...document.querySelectorAll("#rows .row")].sort((a, b) => Number(a.dataset.idx) - Number(b.dataset.idx));
      const box = document.getElementById("entries");
      return rows.length > 0 && Number(rows.at(-1).dataset.id) === last
        && box.scrollTop + box.clientHeight >= box.scrollHeight - 2;
    }, written, { timeout: WAIT });
    const ids = await rowIds();
    assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => written - ids.length + 1 + i), "ascending, contiguous");
    append(3);
    await page.waitForFunction((last) => {
      const rows = [...document.querySelectorAll("#rows .row")].sort((a, b) => Number(a.dataset.idx) - Number(b.dataset.idx));
      const box = document.getElementById("entries");
      return Number(rows.at(-1)?.dataset.id) === last && box.scrollTop + box.clientHeight >= box.scrollHeight - 2;
    }, written, { timeout: WAIT });
    await page.selectOption("#order", "newest");
    await page.waitForSelector(`#rows .row[data-idx="0"][data-id="${written}"]`, { timeout: WAIT });
  });

  it("clears the table and counters, then keeps showing new entries", async () => {
    await page.click("#clear");
    await page.waitForFunction(() => document.querySelectorAll("#rows .row").length === 0
      && document.getElementById("total").textContent === "0", null, { timeout: WAIT });
    append(2);
    await rowsAre([written, written - 1]);
    // The figures refresh four times a second.
    await page.waitForFunction(() => document.getElementById("total").textContent === "2", null, { timeout: WAIT });
  });

  it("renders the dashboard for the README and fits a phone", async () => {
    // Traffic over a few seconds, so the rate chart has a shape: each burst waits for the chart's
    // next once-a-second redraw (an event of the page, not a sleep).
    for (const burst of [40, 90, 60, 140, 110, 70, 160, 120]) {
      const drawn = await page.getAttribute("#chart", "data-drawn");
      append(burst);
      await page.waitForFunction((d) => document.getElementById("chart").dataset.drawn !== d, drawn, { timeout: WAIT });
    }
    await lastIdIs(written);
    // The top lists are refreshed once a second too: wait until they count the bursts.
    await page.waitForFunction(() => Number(document.querySelector("#top-dest li .count")?.textContent.replace(/\D/g, "")) >= 150, null, { timeout: WAIT });
    await page.evaluate(() => document.activeElement?.blur());
    await page.mouse.move(1, 1);
    fs.mkdirSync(path.join(ROOT, "docs"), { recursive: true });
    await page.screenshot({ path: path.join(ROOT, "docs/dashboard.png") });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => document.documentElement.scrollWidth <= window.innerWidth, null, { timeout: WAIT });
    assert.ok(await page.isVisible("#rows .row"));
    await page.screenshot({ path: path.join(ROOT, "docs/dashboard-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1400, height: 900 });
  });

  it("shows a gap when the daemon no longer holds the missed ids (beyond its retention)", async () => {
    const before = written;
    await lastIdIs(before);
    // Offline, the page's reconnections fail until the daemon has dropped what it missed.
    await context.setOffline(true);
    const { code } = await daemon.stop();
    assert.equal(code, 0);
    // While it is down, far more than the smallest retention Config accepts (1 MiB, about 2,500
    // entries): the new daemon keeps the newest of them on disk and 10 in memory.
    append(6_000);
    await daemon.start(["--history", "10", "--retention-bytes", "1MiB"]);
    await daemonReached(base, written);
    const oldest = await journalOldestId(base);
    assert.ok(oldest > before + 1 && oldest < written, `the journal starts at ${oldest}`);
    await context.setOffline(false);
    await lastIdIs(written, 60_000);
    await page.waitForSelector("#gaps:not([hidden])", { timeout: WAIT });
    const note = await page.textContent("#gaps");
    assert.match(note, new RegExp(`entries ${before + 1}–${oldest - 1} were not received`), note);
    assert.equal(Number(query(sockets.at(-1)).since), before, "resumed with since");
    await page.waitForFunction((n) => document.getElementById("missed").textContent === new Intl.NumberFormat().format(n),
      oldest - 1 - before, { timeout: WAIT });
    assert.deepEqual((await rowIds()).slice(0, 3), [written, written - 1, written - 2]);
    append(1);
    await lastIdIs(written);
  });

  it("sends `ping` every 30 s and the daemon answers `pong`", async () => {
    // The interval is the contract's 30 s: this waits for the real one (bounded at 45 s).
    let timer;
    const bound = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no ping/pong within 45 s (pings sent: ${pings.sent})`)), 45_000); });
    await Promise.race([pings.pong, bound]).finally(() => clearTimeout(timer));
    assert.ok(pings.sent >= 1);
  });

  it("signs out: the session ends and its old cookie mints nothing", async () => {
    const old = await sessionCookie();
    assert.ok(old);
    const withOld = () => fetch(`${base}/api/ws-token`, { headers: { cookie: `${old.name}=${old.value}` } });
    assert.equal((await withOld()).status, 200, "the cookie works before sign-out");
    const deleted = page.waitForResponse((r) => r.url().endsWith("/api/session") && r.request().method() === "DELETE", { timeout: WAIT });
    await page.click("#sign-out");
    assert.equal((await deleted).status(), 204);
    await page.waitForSelector("#sign-in-form", { state: "visible", timeout: WAIT });
    assert.equal(await page.getAttribute("#state", "data-state"), "signed-out");
    assert.equal(await sessionCookie(), undefined, "the browser dropped the cookie");
    assert.equal((await withOld()).status, 401, "the daemon ended the session");
    assert.deepEqual(await storedSecrets(), []);
    // A reload now shows the form.
    assert.deepEqual(await page.evaluate(() => window.__csp), [], "no CSP violation before the reload");
    await page.reload();
    await page.waitForSelector("#sign-in-form", { state: "visible", timeout: WAIT });
    assert.equal(await page.isVisible("#dashboard"), false);
  });

  it("shows the Retry-After when sign-ins are throttled", async () => {
    // The daemon locks an address out after repeated failures (429 with Retry-After). This runs
    // last: from here on 127.0.0.1 is locked out of this daemon.
    let message = "";
    for (let attempt = 1; attempt <= 30 && !message.includes("Too many"); attempt++) {
      await page.fill("#login-user", USER);
      await page.fill("#login-pass", `wrong ${attempt}`);
      await page.click("#login-submit");
      await page.waitForFunction(() => {
        const b = document.getElementById("login-submit");
        return !b.disabled && document.getElementById("login-error").textContent !== "";
      }, null, { timeout: WAIT });
      message = await page.textContent("#login-error");
      assert.match(message, /Wrong user name or password|Too many failed sign-ins/);
      await page.evaluate(() => { document.getElementById("login-error").textContent = ""; });
    }
    assert.match(message, /Too many failed sign-ins from this address\. Try again in \d+ s\./);
    assert.equal(await page.isVisible("#dashboard"), false);
  });

  it("met no CSP violation, page error or unexpected console error", async () => {
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
    assert.deepEqual(pageErrors, []);
    // The browser itself logs the failed resource of each wrong-password attempt (401, 429), and of
    // each token request while the page was offline or the daemon down (the retention gap's setup).
    const unexpected = consoleErrors.filter((t) => !/status of (401|429)|net::ERR_(INTERNET_DISCONNECTED|CONNECTION_REFUSED)/.test(t));
    assert.deepEqual(unexpected, []);
  });
});
