// range.js — the dashboard's time ranges (issue 12; the daemon's search, CONTRACT §8): what "last
// 15 min", "last hour", "today" and a custom window mean as epoch milliseconds, how a range sits in
// the page URL (`?range=1h`, or `?from=…&until=…` for a custom one) so it can be bookmarked, and how
// a search's window and progress read. Times are the browser's local time, as `datetime-local`
// inputs are.

/** The relative ranges by URL key, with their labels; each ends when it is chosen. */
export const RANGES = { "15m": "last 15 min", "1h": "last hour", today: "today" };

/**
 * The window `{ key, fromMs, untilMs }` (from ≤ ts < until) of relative range `key` at `now`, or
 * null for a key that is not one.
 */
export function resolveRange(key, now = Date.now()) {
  switch (key) {
    case "15m": return { key, fromMs: now - 15 * 60_000, untilMs: now };
    case "1h": return { key, fromMs: now - 60 * 60_000, untilMs: now };
    case "today": {
      const midnight = new Date(now);
      midnight.setHours(0, 0, 0, 0);
      return { key, fromMs: midnight.getTime(), untilMs: now };
    }
    default: return null;
  }
}

/** A custom window, or null unless both ends are times and `fromMs < untilMs`. */
export function customRange(fromMs, untilMs) {
  return Number.isFinite(fromMs) && Number.isFinite(untilMs) && fromMs < untilMs
    ? { key: "custom", fromMs, untilMs }
    : null;
}

/**
 * The range a page URL's query asks for (a relative one resolved at `now`), or null for live.
 * `params` is a URLSearchParams.
 */
export function rangeFromQuery(params, now = Date.now()) {
  const key = params.get("range");
  if (key !== null) return resolveRange(key, now);
  const from = params.get("from");
  const until = params.get("until");
  return from && until ? customRange(Date.parse(from), Date.parse(until)) : null;
}

/** Puts `range` (null: live) into `params`, replacing what another range put there. */
export function rangeToQuery(params, range) {
  for (const k of ["range", "from", "until"]) params.delete(k);
  if (!range) return;
  if (range.key === "custom") {
    params.set("from", new Date(range.fromMs).toISOString());
    params.set("until", new Date(range.untilMs).toISOString());
  } else {
    params.set("range", range.key);
  }
}

const two = (n) => String(n).padStart(2, "0");

/** `YYYY-MM-DDTHH:MM:SS` in local time: a `datetime-local` input's value for `ms`. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T`
    + `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** Epoch ms of a `datetime-local` value (local time; seconds optional), or NaN. */
export function fromLocalInput(value) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?$/.exec(value ?? "");
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = m.slice(1).map((v) => Number(v ?? 0));
  return new Date(y, mo - 1, d, h, mi, s).getTime();
}

/** `HH:MM:SS` in local time, with the date first unless it is the day of `now`. */
export function clock(ms, now = Date.now()) {
  const d = new Date(ms);
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  const n = new Date(now);
  const sameDay = d.getFullYear() === n.getFullYear() && d.getMonth() === n.getMonth() && d.getDate() === n.getDate();
  return sameDay ? time : `${toLocalInput(ms).slice(0, 10)} ${time}`;
}

/** The window as people read it: `11:45:00–12:45:00` (dates when not today). */
export function windowText(range, now = Date.now()) {
  return `${clock(range.fromMs, now)}–${clock(range.untilMs, now)}`;
}

/** How far through the window an entry at `tsMs` is, from 0 to 1. */
export function progressOf(range, tsMs) {
  if (!Number.isFinite(tsMs)) return 0;
  const f = (tsMs - range.fromMs) / (range.untilMs - range.fromMs);
  return Math.min(1, Math.max(0, f));
}
