// The dashboard's time-range control (issue 12; the daemon's search, CONTRACT §8) in chromium
// against the real daemon: lines with chosen timestamps (Squid's first field); "last hour" with a
// filter shows exactly the matching rows of the window, its progress, then "done" once the log
// passes the window's end (an entry that does not match the filter ends it too); back to live shows
// new live lines; a custom window with a filter, kept in the page URL and restored on reload; a
// filter the daemon refuses shows its reason in place; a search with more results than the table
// holds says how many matched and how many are shown, and its export has every result (from memory,
// or by running the search again when it outgrew what the page keeps).
//
// Run: cargo build && (cd tests/browser && npm ci) && node --test tests/browser/range.test.mjs
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  WAIT, newDaemon, launch, recordCsp, signIn, squidLine, isConnect, lastIdIs, rowIds, rowsAre,
  accessibilityProblems,
} from "./harness.mjs";
import { toLocalInput } from "../../web/range.js";

/** squidLine(n)'s status is 4xx (403 denied, 404) for these n. */
const is4xx = (n) => [5, 6].includes(n % 8);

/** Ids from..to (inclusive) that pass `keep`, newest first (the table's order). */
const newestFirst = (from, to, keep = () => true) =>
  Array.from({ length: to - from + 1 }, (_, i) => to - i).filter(keep);

describe("time-range control in the dashboard", { timeout: 240_000 }, () => {
  let dir, daemon, context, page, base;
  /** Whole seconds, so windows can be chosen on `datetime-local` inputs' one-second steps. */
  const T = Math.floor(Date.now() / 1000);
  /** The ts (epoch seconds) of each line written, by id (index 0 unused). */
  const tsOf = [0];
  const pageErrors = [];
  /** URLs of the WebSockets the page opened, in order. */
  const sockets = [];

  /** Appends one line per ts, in order (ids follow the lines: the journal is in ts order too). */
  function appendAt(times) {
    let text = "";
    for (const ts of times) {
      const n = tsOf.length;
      tsOf.push(ts);
      // squidLine(n, base) logs base + n/1000: this puts it exactly at `ts`.
      text += squidLine(n, ts - n / 1000);
    }
    fs.appendFileSync(daemon.log, text);
  }
  const written = () => tsOf.length - 1;
  const query = (url) => Object.fromEntries(new URL(url).searchParams);
  const search = () => page.evaluate(() => {
    const box = document.getElementById("search");
    return {
      hidden: box.hidden, state: box.dataset.state,
      note: document.getElementById("search-note").textContent,
      count: document.getElementById("search-count").textContent,
      progress: document.getElementById("search-progress").value,
    };
  });
  /** Waits (bounded) until the search line is in `state`; a failure says what it shows instead. */
  const searchState = (state) => page.waitForFunction((s) => document.getElementById("search").dataset.state === s
    && !document.getElementById("search").hidden, state, { timeout: WAIT }).catch(async (e) => {
    assert.fail(`${e.message}: ${JSON.stringify(await search())}`);
  });
  /** Waits (bounded) until the search's note starts with `text`; a failure says what it shows. */
  const noteStarts = (text, timeout = WAIT) => page.waitForFunction((t) => document.getElementById("search-note").textContent.startsWith(t),
    text, { timeout }).catch(async (e) => {
    assert.fail(`${e.message}: ${JSON.stringify(await search())} after ${sockets.slice(-3).join(" ")}`);
  });
  const total = (n) => page.waitForFunction((want) => document.getElementById("total").textContent === String(want), n, { timeout: WAIT });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxytail-range-"));
    daemon = await newDaemon(dir);
    // Ids 1–40: a minute apart, 3 h ago; 41–740: a second apart, 2 h ago; 741–800: 30 s apart,
    // within the last hour (50 to 20.5 min ago).
    await daemon.start();
    base = `http://127.0.0.1:${daemon.port}`;
    appendAt(Array.from({ length: 40 }, (_, i) => T - 3 * 3600 + i * 60));
    appendAt(Array.from({ length: 700 }, (_, i) => T - 2 * 3600 + i));
    appendAt(Array.from({ length: 60 }, (_, i) => T - 50 * 60 + i * 30));
    context = await launch(dir);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await recordCsp(page);
    await page.goto(base + "/");
    await signIn(page);
    await lastIdIs(page, 800);
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (daemon?.child) {
      const child = daemon.child;
      await daemon.stop().catch(() => child.kill("SIGKILL"));
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("searches the last hour with the filter: exactly the matching rows, progress, then done", async () => {
    await page.fill("#f-expr", "status:4xx");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => new URL(location.href).searchParams.get("filter") === "status:4xx", null, { timeout: WAIT });
    const chosenAt = Date.now();
    await page.selectOption("#range", "1h");
    const want = newestFirst(741, 800, is4xx);
    await rowsAre(page, want);
    await total(want.length);
    const sub = query(sockets.at(-1));
    assert.equal(sub.filter, "status:4xx");
    assert.equal(sub.since, undefined);
    assert.ok(Math.abs(Number(sub.until) * 1000 - chosenAt) < 5_000, `until is when it was chosen: ${sub.until}`);
    assert.ok(Math.abs(Number(sub.until) - Number(sub.from) - 3600) < 0.01, `an hour: ${sub.from}–${sub.until}`);
    assert.equal(await page.getAttribute("#state", "data-state"), "search");
    assert.equal(await page.evaluate(() => new URL(location.href).searchParams.get("range")), "1h");
    // Every result is in, but the log has not passed the window's end yet: still running.
    let s = await search();
    assert.equal(s.state, "running", JSON.stringify(s));
    assert.match(s.note, /^Searching .* matching “status:4xx”…$/);
    assert.match(s.count, new RegExp(`^${want.length} entries so far, at (\\S+ )?\\d\\d:\\d\\d:\\d\\d of .*; the search ends when the log passes`));
    // The last match (id 798, 21.5 min ago) is ~64% into the window.
    const reached = (tsOf[want[0]] * 1000 - (chosenAt - 3_600_000)) / 3_600_000;
    assert.ok(Math.abs(s.progress - reached) < 0.01, `progress ${s.progress}, want ${reached}`);
    // A line past the window's end that does not match the filter still ends the search.
    const n = written() + 1;
    assert.ok(!is4xx(n));
    appendAt([Math.ceil(Date.now() / 1000) + 1]);
    await searchState("done");
    s = await search();
    assert.match(s.note, new RegExp(`^Done: ${want.length} entries in (\\S+ )?\\d\\d:\\d\\d:\\d\\d–(\\S+ )?\\d\\d:\\d\\d:\\d\\d matching “status:4xx”\\.$`));
    assert.equal(s.progress, 1);
    assert.equal(s.count, "", "every match is shown");
    assert.deepEqual(await rowIds(page), want, "the line past the window is not shown");
    assert.deepEqual(await accessibilityProblems(page), [], "with the search shown");
  });

  it("goes back to live, with the backlog, and shows new live lines", async () => {
    await page.click("#back-live");
    await page.waitForSelector('#state[data-state="live"]', { timeout: WAIT });
    assert.equal(await page.isVisible("#search"), false);
    assert.equal(await page.inputValue("#range"), "live");
    assert.equal(await page.evaluate(() => new URL(location.href).searchParams.has("range")), false);
    const sub = query(sockets.at(-1));
    assert.equal(sub.backlog, "500", "resubscribed with a backlog, as a first connection");
    assert.equal(sub.filter, "status:4xx", "with the filter in force");
    assert.equal(sub.from, undefined);
    const start = written() + 1;
    appendAt(Array.from({ length: 8 }, () => Math.ceil(Date.now() / 1000) + 2));
    const live = newestFirst(start, written(), is4xx);
    assert.equal(live.length, 2);
    await page.waitForSelector(`#rows .row[data-id="${live[0]}"]`, { timeout: WAIT });
    assert.deepEqual((await rowIds(page)).slice(0, 2), live);
  });

  it("searches a custom window with a filter, kept in the URL and restored on reload", async () => {
    await page.fill("#f-expr", "");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => !new URL(location.href).searchParams.has("filter"), null, { timeout: WAIT });
    await page.selectOption("#range", "custom");
    await page.waitForSelector("#range-from", { state: "visible", timeout: WAIT });
    // A window from id 10 up to (not including) id 30, 3 h ago.
    await page.fill("#range-from", toLocalInput(tsOf[10] * 1000));
    await page.fill("#range-until", toLocalInput(tsOf[30] * 1000));
    await page.fill("#f-expr", "method:CONNECT");
    await page.press("#f-expr", "Enter");
    await page.waitForFunction(() => new URL(location.href).searchParams.get("filter") === "method:CONNECT", null, { timeout: WAIT });
    await page.click("#range-go");
    const want = newestFirst(10, 29, isConnect);
    await searchState("done");
    await rowsAre(page, want);
    await total(want.length);
    assert.match((await search()).note, new RegExp(`^Done: ${want.length} entries in .* matching “method:CONNECT”\\.$`));
    const sub = query(sockets.at(-1));
    assert.equal(Number(sub.from), tsOf[10]);
    assert.equal(Number(sub.until), tsOf[30]);
    assert.equal(sub.filter, "method:CONNECT");
    const url = await page.evaluate(() => Object.fromEntries(new URL(location.href).searchParams));
    assert.deepEqual(url, {
      filter: "method:CONNECT",
      from: new Date(tsOf[10] * 1000).toISOString(),
      until: new Date(tsOf[30] * 1000).toISOString(),
    });
    const before = sockets.length;
    await page.reload();
    await searchState("done");
    await rowsAre(page, want);
    assert.equal(await page.inputValue("#range"), "custom");
    assert.equal(await page.inputValue("#range-from"), toLocalInput(tsOf[10] * 1000));
    assert.equal(await page.inputValue("#range-until"), toLocalInput(tsOf[30] * 1000));
    assert.equal(await page.inputValue("#f-expr"), "method:CONNECT");
    assert.equal(sockets.length, before + 1, "the reload opened only the search, no live stream");
    assert.equal(await page.getAttribute("#state", "data-state"), "search");
  });

  it("shows the daemon's reason in place when it refuses the search's filter", async () => {
    await page.fill("#f-expr", "stauts:404");
    await page.press("#f-expr", "Enter");
    await searchState("error");
    const s = await search();
    assert.match(s.note, /^Search refused: unknown key 'stauts'/, s.note);
    assert.match(await page.textContent("#f-error"), /Filter “stauts:404” not applied: unknown key 'stauts'/);
    assert.equal(await page.evaluate(() => new URL(location.href).searchParams.get("filter")), "method:CONNECT",
      "the URL keeps the filter in force");
    // Fixed: the same window runs again with it.
    await page.fill("#f-expr", "status:404");
    await page.press("#f-expr", "Enter");
    await searchState("done");
    await rowsAre(page, newestFirst(10, 29, (n) => n % 8 === 6));
    assert.equal(await page.textContent("#f-error"), "");
  });

  it("says how many matched and are shown when the table holds fewer; export has every result", async () => {
    await page.fill("#f-expr", "");
    await page.press("#f-expr", "Enter");
    // Ids 41–740, 700 entries: more than the table's 500 rows.
    await page.fill("#range-from", toLocalInput(tsOf[41] * 1000));
    await page.fill("#range-until", toLocalInput(tsOf[740] * 1000 + 1000));
    await page.press("#range-until", "Enter");
    await noteStarts("Done: 700 entries");
    await page.waitForFunction(() => document.getElementById("shown").textContent === "500", null, { timeout: WAIT });
    assert.equal((await search()).count, "The table shows the newest 500; export has all 700.");
    assert.equal((await rowIds(page))[0], 740);
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), page.click("#export-ndjson")]);
    const exported = fs.readFileSync(await download.path(), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(exported.map((e) => e.id), newestFirst(41, 740).reverse(), "every result once, in order");
    assert.ok(exported.every((e, i) => e.ts === tsOf[41 + i]));
    const [csv] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), page.click("#export-csv")]);
    const lines = fs.readFileSync(await csv.path(), "utf8").trim().split("\r\n");
    assert.equal(lines.length, 701);
    assert.equal(lines[1].split(",")[0], "41");
  });

  it("exports every result of a search larger than the page keeps, by running it again", async () => {
    // More results than the page keeps (KEEP, 20,000, trimmed past 25,000): 26,000 entries, a
    // millisecond apart, in a window of their own; a later line ends the window.
    const from = Math.ceil(Date.now() / 1000) + 100;
    const first = written() + 1;
    appendAt(Array.from({ length: 26_000 }, (_, i) => from + i / 1000));
    const last = written();
    appendAt([from + 100]);
    await page.selectOption("#range", "custom");
    await page.fill("#range-from", toLocalInput(from * 1000));
    await page.fill("#range-until", toLocalInput((from + 60) * 1000));
    await page.click("#range-go");
    const n = await page.evaluate(() => new Intl.NumberFormat().format(26_000)); // the page's locale
    await noteStarts(`Done: ${n} entries`, 60_000);
    assert.equal((await search()).count, `The table shows the newest 500; export has all ${n}.`);
    const sockets0 = sockets.length;
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), page.click("#export-ndjson")]);
    const ids = fs.readFileSync(await download.path(), "utf8").trim().split("\n").map((l) => JSON.parse(l).id);
    assert.equal(ids.length, 26_000);
    assert.deepEqual([ids[0], ids.at(-1)], [first, last]);
    assert.ok(ids.every((id, i) => id === first + i), "every result once, in order");
    assert.equal(sockets.length, sockets0 + 1, "the export ran the search again");
    assert.equal(query(sockets.at(-1)).from, query(sockets.at(-2)).from);
    assert.equal(query(sockets.at(-1)).until, query(sockets.at(-2)).until);
  });

  it("met no CSP violation or page error", async () => {
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
    assert.deepEqual(pageErrors, []);
  });
});
