// app.js — the dashboard's wiring: sign-in and sign-out, the kept entries, the header figures,
// the filter box (sent to the daemon, kept in the page URL), quick filters, pause, clear, export
// and the entry dialog. The connection lives in stream.js, the table in view.js, the counters in
// stats.js.
import { LogStream, TokenError, FilterError, currentSession } from "./stream.js";
import { Table, quick } from "./view.js";
import { Stats, drawRate } from "./stats.js";
import { toCsv, toNdjson, FIELDS, QUICK_KEYS, quickTerm, addTerm } from "./entry.js";

/** Entries kept in memory for pausing, resuming and export (the table shows at most ROWS). */
const KEEP = 20_000;
/** Rows the table holds; also the backlog asked for, so a new filter fills the table at once. */
const ROWS = 500;

const $ = (id) => document.getElementById(id);

/** The kept entries, oldest first. */
let kept = [];
const stats = new Stats();
let signedInAs = "";

const table = new Table($("rows"), $("entries"), {
  maxRows: ROWS,
  source: () => kept,
  onOpen: openDetail,
  onQuick: quickFilter,
});

const stream = new LogStream({
  onEntry(e) {
    kept.push(e);
    if (kept.length > KEEP + KEEP / 4) kept = kept.slice(kept.length - KEEP);
    stats.add(e);
    table.push(e);
  },
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
  $("f-error").textContent = `Filter “${expr}” not applied: ${reason}. Still showing ${still}.`;
  $("f-expr").setAttribute("aria-invalid", "true");
}

function clearFilterError() {
  $("f-error").textContent = "";
  $("f-expr").removeAttribute("aria-invalid");
}

/** Bumped by every applyFilter, so only the newest one reports. */
let applying = 0;

/** Resubscribes with `expr` (the table refills with its backlog of matches), or says why not. */
async function applyFilter(expr) {
  clearTimeout(filterTimer);
  expr = expr.trim();
  const seq = ++applying;
  $("f-apply").setAttribute("aria-busy", "true");
  try {
    await stream.setFilter(expr);
    if (seq !== applying) return;
    clearFilterError();
    setUrlFilter(expr);
  } catch (e) {
    if (seq !== applying) return;
    if (e instanceof TokenError && e.status === 401) return; // the sign-in form takes over
    showFilterError(e instanceof FilterError || e instanceof TokenError ? e.message : String(e), expr);
  } finally {
    if (seq === applying) $("f-apply").removeAttribute("aria-busy");
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

$("export-ndjson").addEventListener("click", () =>
  download(toNdjson(shownEntries()), "application/x-ndjson", "ndjson"));
$("export-csv").addEventListener("click", () =>
  download(toCsv(shownEntries()), "text/csv;charset=utf-8", "csv"));

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

/** Fills a top list; `key` (a QUICK_KEYS entry) makes each name a quick filter. */
function fillTop(ol, items, key) {
  // Rebuilt only when it changed, so a name being clicked (or focused) is not replaced under it.
  const sig = JSON.stringify(items);
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
    const term = key === "domain" ? quickTerm(key, { destination: name }) : quickTerm(key, { client_ip: name });
    quick(n, name, term);
    n.title = name;
    const c = document.createElement("span");
    c.className = "count";
    c.textContent = fmt.format(count);
    li.append(n, c);
    ol.appendChild(li);
  }
  if (focused) ol.querySelector(`button[data-term="${CSS.escape(focused)}"]`)?.focus();
}

function updateFigures() {
  $("rate").textContent = fmt.format(stats.currentRate());
  $("total").textContent = fmt.format(stats.total);
  $("shown").textContent = fmt.format(table.count());
  $("last-id").textContent = stream.lastId ? String(stream.lastId) : "—";
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
}

for (const id of ["top-dest", "top-client"]) {
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
  try {
    signedInAs = await currentSession();
    await stream.resume();
    showDashboard();
  } catch (e) {
    showState("signed-out");
    showSignIn(e instanceof TokenError && e.status === 401 ? "" : e.message);
  }
}

start();
