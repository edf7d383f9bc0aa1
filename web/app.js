// app.js — the dashboard's wiring: sign-in and sign-out, the kept entries, the header figures,
// filters, pause, clear, export and the entry dialog. The connection lives in stream.js, the
// table in view.js, the counters in stats.js.
import { LogStream, TokenError, currentSession } from "./stream.js";
import { Table } from "./view.js";
import { Stats, drawRate } from "./stats.js";
import { makeFilter, toCsv, toNdjson, FIELDS } from "./entry.js";

/** Entries kept in memory for filtering, resuming and export (the table shows at most 500). */
const KEEP = 20_000;

const $ = (id) => document.getElementById(id);

/** The kept entries, oldest first. */
let kept = [];
const stats = new Stats();
let signedInAs = "";

const table = new Table($("rows"), $("entries"), {
  maxRows: 500,
  source: () => kept,
  onOpen: openDetail,
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
    const note = document.createElement("p");
    const when = new Date().toISOString().slice(11, 19);
    note.textContent = from === to
      ? `${when} UTC — entry ${from} was not received (the daemon no longer held it).`
      : `${when} UTC — entries ${from}–${to} were not received (the daemon no longer held them).`;
    const box = $("gaps");
    box.hidden = false;
    box.appendChild(note);
    while (box.childElementCount > 5) box.firstElementChild.remove();
  },
  onSignedOut(reason) {
    signedInAs = "";
    showSignIn(reason);
  },
});

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

// --- filters, pause, clear, order ------------------------------------------------------------

function currentFilter() {
  return makeFilter({
    text: $("f-text").value,
    method: $("f-method").value,
    klass: $("f-class").value,
    client: $("f-client").value,
    dest: $("f-dest").value,
  });
}

let filterTimer = 0;
for (const id of ["f-text", "f-method", "f-class", "f-client", "f-dest"]) {
  const el = $(id);
  el.addEventListener(el.tagName === "SELECT" ? "change" : "input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => table.setFilter(currentFilter()), 120);
  });
}
$("controls").addEventListener("submit", (ev) => ev.preventDefault());

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

$("order").addEventListener("change", (ev) => table.setOrder(ev.target.value));

// --- export ----------------------------------------------------------------------------------

/** What is shown: the kept entries that pass the filters (up to the pause point when paused). */
function shownEntries() {
  const f = currentFilter();
  const limit = table.paused ? table.shownUpTo : Infinity;
  return kept.filter((e) => e.id <= limit && (!f || f(e)));
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
  $("detail").showModal();
  $("detail-close").focus();
}

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

function fillTop(ol, items) {
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
    n.textContent = name;
    n.title = name;
    const c = document.createElement("span");
    c.className = "count";
    c.textContent = fmt.format(count);
    li.append(n, c);
    ol.appendChild(li);
  }
}

function updateFigures() {
  $("rate").textContent = fmt.format(stats.currentRate());
  $("total").textContent = fmt.format(stats.total);
  $("shown").textContent = fmt.format(table.count());
  $("last-id").textContent = stream.lastId ? String(stream.lastId) : "—";
  $("missed").textContent = fmt.format(stats.missed);
  $("missed").classList.toggle("bad", stats.missed > 0);
  $("empty").hidden = table.count() > 0;
  const note = $("paused-note");
  if (table.paused) note.textContent = `Paused — ${fmt.format(stats.total - pausedAtTotal)} new`;
  updateCountdown();
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
    fillTop($("top-dest"), top.dest);
    fillTop($("top-client"), top.client);
  }
}, 250);

// --- start -----------------------------------------------------------------------------------

/**
 * On load: a session still open (the HttpOnly cookie, which this script cannot read) resumes at
 * once; the sign-in form shows only when the daemon says there is none (401).
 */
async function start() {
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
