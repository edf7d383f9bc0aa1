// The dashboard's server-side filter (CONTRACT §6, issue 10) in chromium against the real daemon:
// a typed filter refills the table with the daemon's backlog of matches and only matches arrive
// live; the page URL carries the filter and a reload restores it; a bad filter shows the daemon's
// reason in place while the previous view goes on (a link with a bad one opens unfiltered); quick
// filters from a row, a top list and (from the keyboard) the entry dialog; the counters count the
// backlog rows; a filtered reconnect whose `since` is older than the history shows the daemon's
// `gap` message, never an id jump.
//
// Run: cargo build && (cd tests/browser && npm ci) && node --test tests/browser/
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  WAIT, newDaemon, launch, recordCsp, signIn, squidLine, lastIdIs, rowIds, rowsAre, accessibilityProblems,
  daemonReached, journalOldestId,
} from "./harness.mjs";

/** squidLine(n)'s status is 4xx (403 denied, 404) for these n. */
const is4xx = (n) => [5, 6].includes(n % 8);
/** squidLine(n)'s client. */
const clientOf = (n) => ["192.168.1.10", "192.168.1.23", "10.0.0.7", "192.168.1.42", "10.0.0.15"][n % 5];

/** Ids 1..last that pass `keep`, newest first (the table's order). */
const newestFirst = (last, keep) => Array.from({ length: last }, (_, i) => last - i).filter(keep);

describe("server-side filters in the dashboard", { timeout: 180_000 }, () => {
  let dir, daemon, context, page, base;
  let written = 0;
  const pageErrors = [];
  /** URLs of the WebSockets the page opened, in order. */
  const sockets = [];

  function append(count) {
    let text = "";
    for (let i = 0; i < count; i++) text += squidLine(++written);
    fs.appendFileSync(daemon.log, text);
  }

  const query = (url) => Object.fromEntries(new URL(url).searchParams);
  const pageFilter = () => page.evaluate(() => new URL(location.href).searchParams.get("filter"));

  /** Types `expr` into the filter box (applied once typing pauses) and waits until the URL has it. */
  async function typeFilter(expr) {
    await page.fill("#f-expr", "");
    await page.type("#f-expr", expr);
    await page.waitForFunction((want) => new URL(location.href).searchParams.get("filter") === want, expr, { timeout: WAIT });
  }

  /** Sum of a top list's counts, as shown. */
  const topSum = (id) => page.$$eval(`#${id} li .count`, (cs) => cs.reduce((a, c) => a + Number(c.textContent.replace(/\D/g, "")), 0));

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxytail-filters-"));
    daemon = await newDaemon(dir);
    await daemon.start();
    base = `http://127.0.0.1:${daemon.port}`;
    append(40);
    context = await launch(dir);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await recordCsp(page);
    await page.goto(base + "/");
    await signIn(page);
    await lastIdIs(page, 40);
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (daemon?.child) {
      const child = daemon.child;
      await daemon.stop().catch(() => child.kill("SIGKILL"));
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("fills the table with the daemon's matching backlog when a filter is typed; live rows only match", async () => {
    await typeFilter("status:4xx");
    await rowsAre(page, newestFirst(40, is4xx));
    const sub = query(sockets.at(-1));
    assert.equal(sub.filter, "status:4xx");
    assert.equal(sub.backlog, "500", "resubscribed with a backlog the size of the table");
    append(16);
    await rowsAre(page, newestFirst(56, is4xx));
    const codes = await page.$$eval("#rows .row .c-status button", (bs) => bs.map((b) => b.textContent));
    assert.ok(codes.length > 0 && codes.every((c) => /^4\d\d$/.test(c)), codes.join(" "));
    // Ids of a filtered stream jump by design: no gap is reported for them.
    assert.equal(await page.isVisible("#gaps"), false);
    assert.equal(await page.textContent("#missed"), "0");
    assert.equal(await page.inputValue("#f-expr"), "status:4xx");
  });

  it("counts the backlog rows in the counters and the top lists", async () => {
    const n = newestFirst(56, is4xx).length;
    await page.waitForFunction((want) => document.getElementById("total").textContent === String(want), n, { timeout: WAIT });
    assert.equal(await page.textContent("#shown"), String(n));
    // The top lists are redrawn once a second.
    await page.waitForFunction((want) => {
      const sum = (id) => [...document.querySelectorAll(`#${id} li .count`)].reduce((a, c) => a + Number(c.textContent), 0);
      return sum("top-client") === want && sum("top-dest") === want;
    }, n, { timeout: WAIT }).catch(async (e) => {
      assert.fail(`top lists: clients ${await topSum("top-client")}, destinations ${await topSum("top-dest")}, want ${n}: ${e.message}`);
    });
  });

  it("keeps the filter in the page URL; a reload restores the filtered view", async () => {
    assert.equal(await pageFilter(), "status:4xx");
    const before = sockets.length;
    await page.reload();
    await page.waitForSelector('#state[data-state="live"]', { timeout: WAIT });
    assert.equal(await page.inputValue("#f-expr"), "status:4xx");
    await rowsAre(page, newestFirst(56, is4xx));
    assert.equal(sockets.length, before + 1, "one subscription, opened with the filter");
    assert.equal(query(sockets.at(-1)).filter, "status:4xx");
  });

  it("shows the daemon's reason in place for a bad filter and keeps the previous view going", async () => {
    await page.fill("#f-expr", "stauts:404");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => document.getElementById("f-error").textContent !== "", null, { timeout: WAIT });
    const error = await page.textContent("#f-error");
    assert.match(error, /unknown key 'stauts'/, error);
    assert.match(error, /Still showing “status:4xx”/, error);
    assert.equal(await page.getAttribute("#f-expr", "aria-invalid"), "true");
    assert.equal(await pageFilter(), "status:4xx", "the URL keeps the filter in force");
    assert.equal(await page.getAttribute("#state", "data-state"), "live");
    append(8);
    await rowsAre(page, newestFirst(64, is4xx));
    assert.deepEqual(await accessibilityProblems(page), [], "with the error shown");
  });

  it("adds a quick filter when a client in a row is clicked", async () => {
    await page.fill("#f-expr", "status:4xx");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => document.getElementById("f-error").textContent === "", null, { timeout: WAIT });
    assert.equal(clientOf(6), "192.168.1.23");
    await page.click('#rows .row[data-id="6"] .c-client button.q');
    const want = "status:4xx client:192.168.1.23";
    await page.waitForFunction((w) => new URL(location.href).searchParams.get("filter") === w, want, { timeout: WAIT });
    assert.equal(await page.inputValue("#f-expr"), want);
    const want4xx = newestFirst(64, (n) => is4xx(n) && clientOf(n) === "192.168.1.23");
    assert.deepEqual(want4xx, [61, 46, 21, 6]);
    await rowsAre(page, want4xx);
    assert.equal(await page.isVisible("#detail[open]"), false, "a quick filter does not open the entry");
  });

  it("adds a quick filter from a top list and, from the keyboard, from the entry dialog", async () => {
    await page.fill("#f-expr", "");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => !new URL(location.href).searchParams.has("filter"), null, { timeout: WAIT });
    // Every entry again (the table puts only the rows in view into the DOM: count them).
    await page.waitForFunction(() => document.getElementById("shown").textContent === "64", null, { timeout: WAIT });
    await page.waitForSelector('#top-dest button.q[data-term="domain:intranet.local"]', { timeout: WAIT });
    await page.click('#top-dest button.q[data-term="domain:intranet.local"]');
    await page.waitForFunction(() => new URL(location.href).searchParams.get("filter") === "domain:intranet.local", null, { timeout: WAIT });
    const intranet = newestFirst(64, (n) => [2, 6].includes(n % 8));
    await rowsAre(page, intranet);
    // Keyboard only: the first row, Enter opens it, Tab to its status filter, Enter applies it.
    await page.focus("#entries");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#detail[open]", { timeout: WAIT });
    assert.equal(await page.textContent("#detail-title"), `Entry ${intranet[0]}`);
    const status = `status:${squidLine(intranet[0]).match(/\/(\d{3}) /)[1]}`;
    // Focus starts on Close; the filters sit just before Copy JSON and Close.
    let focused;
    for (let i = 0; i < 8 && focused !== status; i++) {
      await page.keyboard.press("Shift+Tab");
      focused = await page.evaluate(() => document.activeElement.dataset.term);
    }
    assert.equal(focused, status, "the dialog's status filter is reachable with Tab");
    await page.keyboard.press("Enter");
    const want = `domain:intranet.local ${status}`;
    await page.waitForFunction((w) => new URL(location.href).searchParams.get("filter") === w, want, { timeout: WAIT });
    assert.equal(await page.isVisible("#detail[open]"), false);
    const code = status.slice(7);
    await rowsAre(page, newestFirst(64, (n) => [2, 6].includes(n % 8) && squidLine(n).includes(`/${code} `)));
  });

  it("notes the daemon's gap when a filtered reconnect's since is older than the journal keeps", async () => {
    await typeFilter("status:4xx");
    await rowsAre(page, newestFirst(64, is4xx));
    const lastMatch = newestFirst(64, is4xx)[0];
    await lastIdIs(page, lastMatch);
    // Offline, the page's reconnections fail until the daemon has dropped what it missed.
    await context.setOffline(true);
    const { code } = await daemon.stop();
    assert.equal(code, 0);
    // While it is down, far more than the smallest retention Config accepts (1 MiB).
    append(6_000);
    await daemon.start(["--history", "10", "--retention-bytes", "1MiB"]);
    await daemonReached(base, written);
    const oldest = await journalOldestId(base);
    assert.ok(oldest > lastMatch + 1 && oldest < written, `the journal starts at ${oldest}`);
    await context.setOffline(false);
    await page.waitForSelector("#gaps:not([hidden])", { timeout: 60_000 });
    const note = await page.textContent("#gaps");
    assert.match(note, new RegExp(`entries after ${lastMatch} and before ${oldest} that match the filter were not received`), note);
    assert.doesNotMatch(note, /–/, "no id-jump note on a filtered stream");
    const resumed = query(sockets.at(-1));
    assert.equal(resumed.since, String(lastMatch));
    assert.equal(resumed.filter, "status:4xx");
    const held = Array.from({ length: written - oldest + 1 }, (_, i) => written - i).filter(is4xx);
    await lastIdIs(page, held[0]);
    await page.waitForFunction(() => document.getElementById("missed").textContent === "?", null, { timeout: WAIT });
    assert.deepEqual((await rowIds(page)).slice(0, 10), held.slice(0, 10));
    await page.waitForFunction((n) => document.getElementById("total").textContent === new Intl.NumberFormat().format(n),
      newestFirst(64, is4xx).length + held.length, { timeout: WAIT });
  });

  it("opens a link with a bad filter on every entry, with the daemon's reason in place", async () => {
    await page.goto(`${base}/?filter=${encodeURIComponent("stauts:404")}`);
    await page.waitForFunction(() => document.getElementById("f-error").textContent !== "", null, { timeout: WAIT });
    const error = await page.textContent("#f-error");
    assert.match(error, /unknown key 'stauts'/, error);
    assert.match(error, /Still showing all entries/, error);
    assert.equal(await page.inputValue("#f-expr"), "stauts:404", "what was asked for stays in the box to be fixed");
    assert.equal(await pageFilter(), null, "the URL no longer claims the refused filter");
    // Unfiltered again: rows are shown up to the newest entry.
    await page.waitForFunction(() => Number(document.getElementById("shown").textContent) > 0, null, { timeout: WAIT });
    await lastIdIs(page, written);
    assert.equal(query(sockets.at(-1)).filter, undefined, "reconnected without the filter");
  });

  it("met no CSP violation or page error", async () => {
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
    assert.deepEqual(pageErrors, []);
  });
});
