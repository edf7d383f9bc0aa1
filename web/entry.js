// entry.js — what the dashboard knows about one log entry (CONTRACT.md §3): its status class,
// its destination host, how it is formatted, the quick-filter terms that select entries like it
// (CONTRACT §6; the daemon does the filtering), and how it exports.

/** The contract's fields, in the contract's order (extra fields of richer formats follow). */
export const FIELDS = [
  "id", "timestamp", "client_ip", "method", "destination", "status", "bytes",
  "ts", "elapsed_ms", "result", "code", "user", "hierarchy", "peer", "content_type",
];

/**
 * The status class used for colour and filtering: "denied" for Squid's TCP_DENIED (whatever the
 * code), else "2xx" … "5xx", else "other" (Squid's 000 "no reply", 1xx, missing).
 */
export function statusClass(e) {
  if (typeof e.result === "string" && e.result.includes("DENIED")) return "denied";
  const code = typeof e.code === "number" ? e.code : parseInt(String(e.status ?? ""), 10);
  if (code >= 200 && code < 600) return `${Math.floor(code / 100)}xx`;
  return "other";
}

/** The host (with port when logged) of a destination: `http://a.b/c` → `a.b`, `a.b:443` stays. */
export function destinationHost(dest) {
  if (typeof dest !== "string") return "";
  const scheme = dest.indexOf("://");
  let rest = scheme >= 0 ? dest.slice(scheme + 3) : dest;
  const slash = rest.search(/[/?#]/);
  if (slash >= 0) rest = rest.slice(0, slash);
  const at = rest.lastIndexOf("@");
  return at >= 0 ? rest.slice(at + 1) : rest;
}

/** Bytes for people: 999 B, 1.2 KiB, 3.4 MiB. */
export function formatBytes(n) {
  if (typeof n !== "number") return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Milliseconds for people: 85 ms, 1.2 s, 3 min. */
export function formatElapsed(ms) {
  if (typeof ms !== "number") return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/**
 * A filter value as the grammar of CONTRACT §6 reads it: quoted when it holds a space; null when
 * it cannot be written (empty, or a `"`, which the grammar has no escape for).
 */
export function filterValue(v) {
  if (typeof v !== "string" || v === "" || v.includes('"')) return null;
  return /\s/.test(v) ? `"${v}"` : v;
}

/** The host of a destination without its port, lower case, as `domain:` compares it. */
export function domainOf(dest) {
  return destinationHost(dest).replace(/:\d+$/, "").toLowerCase();
}

/** Keys the dashboard offers quick filters on (a row's cells, the top lists, the entry dialog). */
export const QUICK_KEYS = ["client", "domain", "status", "user", "node"];

/**
 * The filter term that selects entries like `e` on `key` (one of QUICK_KEYS), or null when there
 * is nothing to filter on. A client that is not an address (a pseudonym, CONTRACT §7) becomes a
 * bare word, which `client:` would refuse.
 */
export function quickTerm(key, e) {
  switch (key) {
    case "client": {
      const c = e.client_ip;
      if (typeof c !== "string" || !c) return null;
      const address = /^[\d.]+$/.test(c) || (/^[\da-f:.]+$/i.test(c) && c.includes(":"));
      return address ? `client:${c}` : filterValue(c);
    }
    case "domain": {
      const v = filterValue(domainOf(e.destination));
      return v ? `domain:${v}` : null;
    }
    case "status":
      return typeof e.code === "number" ? `status:${e.code}` : null;
    case "user": {
      if (e.user === null || e.user === undefined || e.user === "") return "user:-";
      const v = filterValue(String(e.user));
      return v ? `user:${v}` : null;
    }
    case "node": {
      // Only a fleet central's entries carry the edge's name (CONTRACT §10).
      const v = filterValue(e.node);
      return v ? `node:${v}` : null;
    }
    default:
      return null;
  }
}

/** `expr` with `term` added (ANDed with other keys, ORed with the same key), unless it is there. */
export function addTerm(expr, term) {
  // Terms as the grammar splits them: spaces separate, except inside quotes.
  const terms = expr.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
  const rest = expr.trim();
  if (terms.includes(term)) return rest;
  return rest ? `${rest} ${term}` : term;
}

/** Every key of the given entries: the contract's first, then extras in order of appearance. */
function columns(entries) {
  const cols = [...FIELDS];
  const seen = new Set(cols);
  for (const e of entries) {
    for (const k of Object.keys(e)) {
      if (!seen.has(k)) { seen.add(k); cols.push(k); }
    }
  }
  return cols;
}

/** One JSON object per line, as the daemon sent it. */
export function toNdjson(entries) {
  let out = "";
  for (const e of entries) out += JSON.stringify(e) + "\n";
  return out;
}

/** One CSV cell (RFC 4180), with spreadsheet formulas defused (a leading = + - @ gets a quote). */
function csvCell(v) {
  if (v === null || v === undefined) return "";
  let s = String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** A header line and one line per entry, CRLF-terminated. */
export function toCsv(entries) {
  const cols = columns(entries);
  let out = cols.join(",") + "\r\n";
  for (const e of entries) out += cols.map((k) => csvCell(e[k])).join(",") + "\r\n";
  return out;
}
