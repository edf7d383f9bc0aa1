// app.js — the dashboard's wiring: sign-in and sign-out, the kept entries, the header figures,
// the filter box (sent to the daemon, kept in the page URL), the time range (a search replacing the
// live table, kept in the page URL too), quick filters, pause, clear, export and the entry dialog.
// The connection lives in stream.js, the table in view.js, the counters in stats.js, what a time
// range means in range.js.
import { LogStream, Search, TokenError, FilterError, currentSession } from "./stream.js";
import { Table, quick } from "./view.js";
import { Stats, drawRate } from "./stats.js";
import { toCsv, toNdjson, FIELDS, QUICK_KEYS, quickTerm, addTerm } from "./entry.js";
import {
  resolveRange, customRange, rangeFromQuery, rangeToQuery, toLocalInput, fromLocalInput, clock,
  windowText, progressOf,
} from "./range.js";

/** Entries kept in memory for pausing, resuming and export (the table shows at most ROWS). */
const KEEP = 20_000;
/** Rows the table holds; also the backlog asked for, so a new filter fills the table at once. */
const ROWS = 500;

const $ = (id) => document.getElementById(id);

/** The kept entries, oldest first. */
let kept = [];
/** The time range in force (`{ key, fromMs, untilMs }`, range.js), or null when live. */
let range = null;
/**
 * The search shown instead of the live stream (null when live): its range, filter, Search, what
 * arrived (`count`, `lastId`, `lastTs` in ms), `state` ("running", "done", "error") with its
 * `message`, and `dropped` once it outgrew KEEP (its export then runs it again).
 */
let found = null;
const stats = new Stats();
let signedInAs = "";

const table = new Table($("rows"), $("entries"), {
  maxRows: ROWS,
  source: () => kept,
  onOpen: openDetail,
  onQuick: quickFilter,
});

/** Keeps `e` (the oldest go beyond KEEP), counts it and hands it to the table. */
function take(e) {
  kept.push(e);
  if (kept.length > KEEP + KEEP / 4) {
    kept = kept.slice(kept.length - KEEP);
    // A search's export must hold every result: beyond this it runs the search again.
    if (found) found.dropped = true;
  }
  stats.add(e);
  table.push(e);
}

const stream = new LogStream({
  onEntry: take,
  onState: showState,
  onGap(from, to) {
    stats.missed += to - from + 1;
    gapNote(from === to
      ? `entry ${from} was not received (the daemon no longer held it).`
      : `entries ${from}–${to} were not received (the daemon no longer held them).`);
  },
  onFilteredGap(after, before) {
    // How many of the lost ids matched is unknown: the figure says so instead of a number.
    stats.filteredGaps++;
    gapNote(`entries after ${after} and before ${before} that match the filter were not received `
      + "(the daemon no longer held them).");
  },
  onReset() {
    resetView();
  },
  onFilterRefused(reason, refused) {
    showFilterError(reason, refused);
    setUrlFilter("");
  },
  backlog: ROWS,
  onSignedOut(reason) {
    signedInAs = "";
    showSignIn(reason);
  },
});

/** A note above the table (the last five stay). */
function gapNote(text) {
  const note = document.createElement("p");
  note.textContent = `${new Date().toISOString().slice(11, 19)} UTC — ${text}`;
  const box = $("gaps");
  box.hidden = false;
  box.appendChild(note);
  while (box.childElementCount > 5) box.firstElementChild.remove();
}

// --- connection state ------------------------------------------------------------------------

let waitingUntil = 0;

function showState(state, detail = "", retryAt = 0) {
  const el = $("state");
  el.dataset.state = state;
  waitingUntil = state === "waiting" ? retryAt : 0;
  el.textContent = stateText(state, detail);
  updateCountdown();
}

/** The seconds left before the next attempt, beside the (live) state text but not announced. */
function updateCountdown() {
  const secs = Math.max(0, Math.ceil((waitingUntil - Date.now()) / 1000));
  const text = waitingUntil && secs ? `in ${secs} s` : "";
  if ($("retry").textContent !== text) $("retry").textContent = text;
}

function stateText(state, detail) {
  switch (state) {
    case "live": return detail ? `Live — ${detail.toLowerCase()}` : "Live";
    case "connecting": return detail || "Connecting…";
    case "waiting": return `${detail}; reconnecting…`;
    case "search": return "Search — not live";
    default: return "Signed out";
  }
}

// --- sign-in -------------------------------------------------------------------------------

function showSignIn(message = "") {
  $("dashboard").hidden = true;
  $("user-box").hidden = true;
  $("sign-in").hidden = false;
  $("login-error").textContent = message;
  $("login-pass").value = "";
  $("login-user").focus();
}

function showDashboard() {
  $("login-pass").value = "";
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("user-box").hidden = false;
  $("user-name").textContent = signedInAs;
  table.rebuild();
  $("entries").focus({ preventScroll: true });
}

async function signIn(user, pass) {
  const button = $("login-submit");
  button.disabled = true;
  $("login-error").textContent = "";
  try {
    signedInAs = await stream.signIn(user, pass);
    showDashboard();
    // A bookmarked range: the search replaces the live stream just opened.
    if (range) startSearch(fresh(range), stream.filter);
  } catch (e) {
    showState("signed-out");
    let message = e instanceof TokenError ? e.message : `Sign-in failed: ${e}`;
    if (e instanceof TokenError && e.status === 429) {
      message += e.retryAfterSecs !== null
        ? ` Try again in ${e.retryAfterSecs} s.`
        : " Try again later.";
    }
    showSignIn(message);
    $("login-user").value = user;
    if (e instanceof TokenError && e.status === 401) $("login-pass").focus();
  } finally {
    button.disabled = false;
  }
}

$("sign-in-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("login-user").value, $("login-pass").value);
});

$("sign-out").addEventListener("click", () => {
  endSearch();
  stream.signOut();
  signedInAs = "";
  clearAll();
  stream.resetPosition();
  showSignIn("Signed out.");
});

// --- the filter box, quick filters -----------------------------------------------------------

/** The filter a link to this page carries (`?filter=`), so a filtered view can be bookmarked. */
function urlFilter() {
  return new URLSearchParams(location.search).get("filter") ?? "";
}

/** Puts `expr` into the page URL ("" removes it) without a new history entry. */
function setUrlFilter(expr) {
  const url = new URL(location.href);
  if (expr) url.searchParams.set("filter", expr);
  else url.searchParams.delete("filter");
  if (url.href !== location.href) history.replaceState(history.state, "", url);
}

/** The daemon's reason, in place under the box, with what the table still shows. */
function showFilterError(reason, expr) {
  const still = stream.filter ? `“${stream.filter}”` : "all entries";
  $("f-error").textContent = range
    ? `Filter “${expr}” not applied: ${reason}.`
    : `Filter “${expr}” not applied: ${reason}. Still showing ${still}.`;
  $("f-expr").setAttribute("aria-invalid", "true");
}

function clearFilterError() {
  $("f-error").textContent = "";
  $("f-expr").removeAttribute("aria-invalid");
}

/** Bumped by every applyFilter, so only the newest one reports. */
let applying = 0;
/** A filter sent to the live stream and not answered yet (a range chosen meanwhile searches with it). */
let pendingFilter = null;

/** Resubscribes with `expr` (the table refills with its backlog of matches), or says why not. */
async function applyFilter(expr) {
  clearTimeout(filterTimer);
  expr = expr.trim();
  const seq = ++applying;
  if (range) {
    // Searching: the same window (a relative one ending now) with the new filter.
    if (expr !== found?.filter) startSearch(fresh(range), expr);
    return;
  }
  $("f-apply").setAttribute("aria-busy", "true");
  pendingFilter = expr;
  try {
    await stream.setFilter(expr);
    if (seq !== applying) return;
    clearFilterError();
    setUrlFilter(expr);
  } catch (e) {
    // Superseded by a newer filter, or by a search (which runs with the filter asked for).
    if (seq !== applying || range) return;
    if (e instanceof TokenError && e.status === 401) return; // the sign-in form takes over
    showFilterError(e instanceof FilterError || e instanceof TokenError ? e.message : String(e), expr);
  } finally {
    if (seq === applying) {
      $("f-apply").removeAttribute("aria-busy");
      pendingFilter = null;
    }
  }
}

/** Adds `term` to the filter box and applies it (a click on a row, a top list, the dialog). */
function quickFilter(term) {
  const box = $("f-expr");
  box.value = addTerm(box.value, term);
  applyFilter(box.value);
}

// Typing applies once the typist pauses; Enter (the form's submit) at once.
let filterTimer = 0;
$("f-expr").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => applyFilter($("f-expr").value), 700);
});
$("controls").addEventListener("submit", (ev) => {
  ev.preventDefault();
  applyFilter($("f-expr").value);
});

// --- pause, clear, order -----------------------------------------------------------------------

let pausedAtTotal = 0;
$("pause").addEventListener("click", () => {
  const paused = !table.paused;
  pausedAtTotal = stats.total;
  table.setPaused(paused);
  const b = $("pause");
  b.setAttribute("aria-pressed", String(paused));
  b.textContent = paused ? "Resume" : "Pause";
  $("paused-note").hidden = !paused;
  updateFigures();
});

function clearAll() {
  kept = [];
  stats.reset();
  // A paused view stays empty until resumed; a live one fills again as entries arrive.
  table.shownUpTo = stream.lastId;
  table.rebuild();
  const gaps = $("gaps");
  gaps.textContent = "";
  gaps.hidden = true;
  pausedAtTotal = 0;
}
$("clear").addEventListener("click", clearAll);

/** A new filter's subscription starts: empty, counters at 0, and live (it fills with its backlog). */
function resetView() {
  if (table.paused) $("pause").click();
  clearAll();
}

$("order").addEventListener("change", (ev) => table.setOrder(ev.target.value));

// --- the time range: a search instead of the live stream (CONTRACT §8, issue 12) --------------

/** The same range, a relative one resolved again so that it ends now. */
function fresh(r) {
  return r.key === "custom" ? r : resolveRange(r.key);
}

/** Puts `r` (null: live) into the page URL without a new history entry. */
function setUrlRange(r) {
  const url = new URL(location.href);
  rangeToQuery(url.searchParams, r);
  if (url.href !== location.href) history.replaceState(history.state, "", url);
}

/** The range control shows `r` (null: live). */
function showRange(r) {
  $("range").value = r ? r.key : "live";
  $("range-custom").hidden = !r || r.key !== "custom";
  if (r && r.key === "custom") {
    $("range-from").value = toLocalInput(r.fromMs);
    $("range-until").value = toLocalInput(r.untilMs);
  }
  $("range-error").textContent = "";
  $("range-from").removeAttribute("aria-invalid");
  $("range-until").removeAttribute("aria-invalid");
}

/** Replaces the live stream (or the previous search) with a search of `r` filtered by `filter`. */
function startSearch(r, filter) {
  found?.search.close();
  stream.stop();
  // A live filter switch still waiting is dropped by stop(); the search carries the filter now.
  pendingFilter = null;
  $("f-apply").removeAttribute("aria-busy");
  range = r;
  showRange(r);
  setUrlRange(r);
  resetView();
  showState("search");
  const mine = {
    range: r, filter, search: null, count: 0, lastId: 0, lastTs: NaN, state: "running", message: "",
    dropped: false,
  };
  found = mine;
  const current = () => found === mine;
  mine.search = new Search({
    fromMs: r.fromMs,
    untilMs: r.untilMs,
    filter,
    onAccepted() {
      if (!current()) return;
      // The daemon took this filter: it is the one in force (back to live keeps it).
      stream.filter = filter;
      setUrlFilter(filter);
      clearFilterError();
    },
    onEntry(e) {
      if (!current()) return;
      mine.count++;
      mine.lastId = e.id;
      if (typeof e.ts === "number") mine.lastTs = e.ts * 1000;
      take(e);
    },
    onGap(after, before) {
      if (!current()) return;
      stats.filteredGaps++;
      gapNote(`entries after ${after} and before ${before} that match are no longer kept (retention): `
        + "the search starts at the oldest entry kept.");
    },
    onEnd(code, reason) {
      if (!current()) return;
      if (code === 1000) {
        mine.state = "done";
      } else {
        mine.state = "error";
        mine.message = code === 1008 && reason
          ? `Search refused: ${reason}.`
          : `Search stopped (${code}${reason ? ` ${reason}` : ""}) after ${fmt.format(mine.count)} entries; `
            + "choose the range again to run it again.";
        // Refused before a word with a new filter: say so under the filter box too.
        if (code === 1008 && reason && !mine.search.accepted && filter !== stream.filter) {
          showFilterError(reason, filter);
        }
      }
      showSearch();
    },
  });
  showSearch();
  mine.search.start().catch((e) => {
    if (!current()) return;
    if (e instanceof TokenError && e.status === 401) {
      sessionEnded();
      return;
    }
    mine.state = "error";
    mine.message = `Search failed: ${e.message}`;
    showSearch();
  });
}

/**
 * The filter a new window is searched with: the latest asked for — the current search's (accepted
 * or still waiting for the daemon's answer) or a live switch still waiting — unless the daemon
 * refused it; else the one in force.
 */
function searchFilter() {
  if (found) return found.search.accepted || found.state === "running" ? found.filter : stream.filter;
  return pendingFilter ?? stream.filter;
}

/** Closes the search, if any (the range stays: sign-in again runs it again). */
function endSearch() {
  found?.search.close();
  found = null;
  $("search").hidden = true;
}

/** The daemon no longer knows the session while a search ran or was starting. */
function sessionEnded() {
  endSearch();
  signedInAs = "";
  showState("signed-out");
  showSignIn("Your session has ended. Please sign in again.");
}

/** Leaves the search: live again, with the backlog a first connection gets. */
async function backToLive() {
  endSearch();
  range = null;
  showRange(null);
  setUrlRange(null);
  resetView();
  try {
    await stream.resume();
  } catch (e) {
    if (e instanceof TokenError && e.status === 401) sessionEnded();
    else $("range-error").textContent = `Could not go live: ${e.message}`;
  }
}

/** Sets `el`'s text only when it changed (no needless announcement or layout). */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** The search's progress, its end, or why it stopped, above the table. */
function showSearch() {
  const box = $("search");
  if (!found) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.state = found.state;
  const r = found.range;
  const win = windowText(r);
  const n = found.count;
  const entries = `${fmt.format(n)} ${n === 1 ? "entry" : "entries"}`;
  const what = found.filter ? ` matching “${found.filter}”` : "";
  const bar = $("search-progress");
  // Matched vs shown: the table holds ROWS, the export every result.
  const shown = n > table.count() && table.count() > 0
    ? ` The table shows the newest ${fmt.format(table.count())}; export has all ${fmt.format(n)}.`
    : "";
  let note;
  let count = "";
  if (found.state === "running") {
    note = `Searching ${win}${what}…`;
    bar.value = progressOf(r, found.lastTs);
    const at = Number.isFinite(found.lastTs) ? `, at ${clock(found.lastTs)} of ${win}` : "";
    count = `${entries} so far${at}; the search ends when the log passes ${clock(r.untilMs)}.${shown}`;
  } else if (found.state === "done") {
    bar.value = 1;
    note = `Done: ${entries} in ${win}${what}.`;
    count = shown.trim();
  } else {
    note = found.message;
  }
  if (found.exporting !== undefined) count = `Exporting: ${fmt.format(found.exporting)} of ${fmt.format(n)} entries…`;
  setText($("search-note"), note);
  setText($("search-count"), count);
}

$("range").addEventListener("change", () => {
  const key = $("range").value;
  $("range-error").textContent = "";
  if (key === "live") {
    $("range-custom").hidden = true;
    if (range) backToLive();
    return;
  }
  if (key === "custom") {
    // Starts from the window shown (or the last hour); runs when "Search" is pressed.
    const r = found?.range ?? resolveRange("1h");
    $("range-from").value = toLocalInput(r.fromMs);
    $("range-until").value = toLocalInput(r.untilMs);
    $("range-custom").hidden = false;
    $("range-from").focus();
    return;
  }
  startSearch(resolveRange(key), searchFilter());
});

function runCustom() {
  const from = fromLocalInput($("range-from").value);
  const until = fromLocalInput($("range-until").value);
  const r = customRange(from, until);
  $("range-from").toggleAttribute("aria-invalid", !Number.isFinite(from));
  $("range-until").toggleAttribute("aria-invalid", !Number.isFinite(until) || (Number.isFinite(from) && until <= from));
  if (!r) {
    $("range-error").textContent = "Choose a start time and an end after it.";
    return;
  }
  startSearch(r, searchFilter());
}
$("range-go").addEventListener("click", runCustom);
for (const id of ["range-from", "range-until"]) {
  $(id).addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      runCustom();
    }
  });
}
$("back-live").addEventListener("click", backToLive);

/**
 * A search with more results than the page keeps: runs it again and builds the file from the
 * daemon's text as it arrives, so the export has every result whatever KEEP is.
 */
function exportSearch(format) {
  const mine = found;
  if (!mine || mine.exporting !== undefined) return;
  const lines = [];
  mine.exporting = 0;
  const finish = (message) => {
    delete mine.exporting;
    if (message && found === mine) $("range-error").textContent = message;
    if (found === mine) showSearch();
  };
  const again = new Search({
    fromMs: mine.range.fromMs,
    untilMs: mine.range.untilMs,
    filter: mine.filter,
    onAccepted() {},
    onEntry(e, text) {
      lines.push(text);
      mine.exporting = lines.length;
    },
    onGap() {},
    onEnd(code, reason) {
      if (code !== 1000) {
        finish(`Export failed (${code}${reason ? ` ${reason}` : ""}).`);
        return;
      }
      if (format === "csv") download(toCsv(lines.map((l) => JSON.parse(l))), "text/csv;charset=utf-8", "csv");
      else download(lines.length ? `${lines.join("\n")}\n` : "", "application/x-ndjson", "ndjson");
      finish("");
    },
  });
  showSearch();
  again.start().catch((e) => finish(`Export failed: ${e.message}`));
}

// --- export ----------------------------------------------------------------------------------

/** What is shown: the kept entries (up to the pause point when paused); the daemon filtered them. */
function shownEntries() {
  const limit = table.paused ? table.shownUpTo : Infinity;
  return kept.filter((e) => e.id <= limit);
}

function download(text, type, ext) {
  const blob = new Blob([text], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = `proxytail-${new Date().toISOString().replace(/[:.]/g, "-")}.${ext}`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

$("export-ndjson").addEventListener("click", () => {
  if (found?.dropped) exportSearch("ndjson");
  else download(toNdjson(shownEntries()), "application/x-ndjson", "ndjson");
});
$("export-csv").addEventListener("click", () => {
  if (found?.dropped) exportSearch("csv");
  else download(toCsv(shownEntries()), "text/csv;charset=utf-8", "csv");
});

// --- the entry dialog ------------------------------------------------------------------------

let detailReturn = null;
let detailEntry = null;

function openDetail(e, row) {
  detailReturn = row;
  detailEntry = e;
  $("detail-title").textContent = `Entry ${e.id}`;
  const dl = $("detail-fields");
  dl.textContent = "";
  const keys = [...FIELDS, ...Object.keys(e).filter((k) => !FIELDS.includes(k))];
  for (const k of keys) {
    if (!(k in e)) continue;
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = e[k] === null ? "null" : String(e[k]);
    if (e[k] === null) dd.className = "null";
    dl.append(dt, dd);
  }
  const actions = $("detail-quick");
  actions.textContent = "";
  for (const key of QUICK_KEYS) {
    const term = quickTerm(key, e);
    if (!term) continue;
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.term = term;
    b.textContent = `Filter ${term}`;
    actions.appendChild(b);
  }
  $("detail").showModal();
  $("detail-close").focus();
}

$("detail-quick").addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  $("detail").close();
  quickFilter(b.dataset.term);
});

$("detail").addEventListener("close", () => {
  detailReturn?.isConnected ? detailReturn.focus() : $("entries").focus();
  detailReturn = null;
});

$("detail-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(JSON.stringify(detailEntry, null, 2));
    $("detail-copy").textContent = "Copied";
  } catch {
    $("detail-copy").textContent = "Copy failed";
  }
  setTimeout(() => { $("detail-copy").textContent = "Copy JSON"; }, 1500);
});

// --- header figures, chart, top lists ---------------------------------------------------------

const fmt = new Intl.NumberFormat();

/**
 * Fills a top list; `key` (a QUICK_KEYS entry) makes each name a quick filter. `perMinute` (the
 * node list's) adds each name's entries in the last minute.
 */
function fillTop(ol, items, key, perMinute = null) {
  // Rebuilt only when it changed, so a name being clicked (or focused) is not replaced under it.
  const sig = JSON.stringify([items, perMinute && items.map(([name]) => perMinute.get(name) ?? 0)]);
  if (ol.dataset.sig === sig) return;
  ol.dataset.sig = sig;
  const focused = ol.contains(document.activeElement) ? document.activeElement.dataset.term : null;
  ol.textContent = "";
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "none yet";
    ol.appendChild(li);
  }
  for (const [name, count] of items) {
    const li = document.createElement("li");
    const n = document.createElement("span");
    n.className = "name";
    const term = quickTerm(key, { destination: name, client_ip: name, node: name });
    quick(n, name, term);
    n.title = name;
    const c = document.createElement("span");
    c.className = "count";
    c.textContent = fmt.format(count);
    li.append(n, c);
    if (perMinute) {
      const r = document.createElement("span");
      r.className = "rate";
      r.textContent = `${fmt.format(perMinute.get(name) ?? 0)}/min`;
      r.title = "Entries in the last minute";
      li.appendChild(r);
    }
    ol.appendChild(li);
  }
  if (focused) ol.querySelector(`button[data-term="${CSS.escape(focused)}"]`)?.focus();
}

function updateFigures() {
  $("rate").textContent = fmt.format(stats.currentRate());
  $("total").textContent = fmt.format(stats.total);
  $("shown").textContent = fmt.format(table.count());
  const lastId = found ? found.lastId : stream.lastId;
  $("last-id").textContent = lastId ? String(lastId) : "—";
  const missed = $("missed");
  const known = fmt.format(stats.missed);
  missed.textContent = stats.filteredGaps ? (stats.missed ? `${known}+?` : "?") : known;
  missed.title = stats.filteredGaps
    ? `Entries matching the filter were lost in ${stats.filteredGaps} gap(s); see the notes above the table.`
    : "";
  missed.classList.toggle("bad", stats.missed > 0 || stats.filteredGaps > 0);
  $("empty").hidden = table.count() > 0;
  const note = $("paused-note");
  if (table.paused) note.textContent = `Paused — ${fmt.format(stats.total - pausedAtTotal)} new`;
  updateCountdown();
  if (found) showSearch();
}

for (const id of ["top-dest", "top-client", "top-node"]) {
  $(id).addEventListener("click", (ev) => {
    const b = ev.target.closest("button.q");
    if (b) quickFilter(b.dataset.term);
  });
}

let lastSlow = 0;
setInterval(() => {
  if ($("dashboard").hidden) return;
  updateFigures();
  const now = Date.now();
  if (now - lastSlow >= 1000) {
    lastSlow = now;
    drawRate($("chart"), stats.series(now));
    const top = stats.top(5, now);
    fillTop($("top-dest"), top.dest, "domain");
    fillTop($("top-client"), top.client, "client");
    $("top-node-box").hidden = top.node.length === 0;
    fillTop($("top-node"), top.node, "node", stats.nodePerMinute(now));
  }
}, 250);

// --- start -----------------------------------------------------------------------------------

/**
 * On load: a session still open (the HttpOnly cookie, which this script cannot read) resumes at
 * once; the sign-in form shows only when the daemon says there is none (401).
 */
async function start() {
  const expr = urlFilter().trim();
  $("f-expr").value = expr;
  stream.filter = expr;
  range = rangeFromQuery(new URLSearchParams(location.search));
  if (range) showRange(range);
  try {
    signedInAs = await currentSession();
    if (range) {
      showDashboard();
      startSearch(range, expr);
      return;
    }
    await stream.resume();
    showDashboard();
  } catch (e) {
    showState("signed-out");
    showSignIn(e instanceof TokenError && e.status === 401 ? "" : e.message);
  }
}

start();
