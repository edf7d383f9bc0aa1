// stats.js — counters for the header: entries per second over the last minute (drawn on a canvas,
// no library), totals, and the top destinations and clients over the last few minutes.
import { destinationHost } from "./entry.js";

/** Seconds of rate history kept and drawn. */
export const RATE_WINDOW = 60;
/** Width of one top-N bucket, and how many are kept (10 s × 30 = the last 5 minutes). */
const TOP_BUCKET_SECS = 10;
const TOP_BUCKETS = 30;

export class Stats {
  constructor() {
    /** Entries received since sign-in or the last filter change (backlog included, paused or not). */
    this.total = 0;
    /** Ids that never arrived (gaps in an unfiltered stream). */
    this.missed = 0;
    /** The daemon's `gap` messages in a filtered stream (how many matching entries were lost is unknown). */
    this.filteredGaps = 0;
    /** Entries per second: `rate[i]` counts second `rateStart + i`. */
    this.rate = new Array(RATE_WINDOW + 1).fill(0);
    this.rateStart = 0;
    /** Top-N buckets, newest last: { start, dest: Map, client: Map, node: Map }. */
    this.buckets = [];
    /** Per node (a fleet central's entries), entries per second aligned with `rate`. */
    this.nodeRate = new Map();
  }

  /** Counts one entry that arrived at `nowMs`. */
  add(e, nowMs = Date.now()) {
    this.total++;
    const sec = Math.floor(nowMs / 1000);
    this.#advance(sec);
    this.rate[sec - this.rateStart]++;
    const start = sec - (sec % TOP_BUCKET_SECS);
    let b = this.buckets[this.buckets.length - 1];
    if (!b || b.start !== start) {
      b = { start, dest: new Map(), client: new Map(), node: new Map() };
      this.buckets.push(b);
      while (this.buckets.length > TOP_BUCKETS) this.buckets.shift();
    }
    const host = destinationHost(e.destination);
    if (host) b.dest.set(host, (b.dest.get(host) ?? 0) + 1);
    if (e.client_ip) b.client.set(e.client_ip, (b.client.get(e.client_ip) ?? 0) + 1);
    // A fleet central's entries name their edge (CONTRACT §10); others have no `node`.
    if (typeof e.node === "string" && e.node) {
      b.node.set(e.node, (b.node.get(e.node) ?? 0) + 1);
      let r = this.nodeRate.get(e.node);
      if (!r) {
        r = new Array(RATE_WINDOW + 1).fill(0);
        this.nodeRate.set(e.node, r);
      }
      r[sec - this.rateStart]++;
    }
  }

  /** Moves the rate window so that second `sec` is its last slot. */
  #advance(sec) {
    const shift = sec - (this.rateStart + RATE_WINDOW);
    if (shift <= 0) return;
    for (const r of [this.rate, ...this.nodeRate.values()]) {
      if (shift > RATE_WINDOW) r.fill(0);
      else { r.splice(0, shift); for (let i = 0; i < shift; i++) r.push(0); }
    }
    this.rateStart = sec - RATE_WINDOW;
  }

  /** Entries per second for the last RATE_WINDOW complete seconds, oldest first. */
  series(nowMs = Date.now()) {
    this.#advance(Math.floor(nowMs / 1000));
    return this.rate.slice(0, RATE_WINDOW);
  }

  /** Entries in the last complete second. */
  currentRate(nowMs = Date.now()) {
    const s = this.series(nowMs);
    return s[s.length - 1];
  }

  /** Per node, its entries in the last RATE_WINDOW complete seconds (a minute): a fleet's per-node rate. */
  nodePerMinute(nowMs = Date.now()) {
    this.#advance(Math.floor(nowMs / 1000));
    const out = new Map();
    for (const [node, r] of this.nodeRate) out.set(node, r.slice(0, RATE_WINDOW).reduce((a, b) => a + b, 0));
    return out;
  }

  /** The `n` most frequent destination hosts, clients and nodes (none unless fleet) over the kept buckets. */
  top(n = 5, nowMs = Date.now()) {
    const oldest = Math.floor(nowMs / 1000) - TOP_BUCKET_SECS * TOP_BUCKETS;
    const sum = (key) => {
      const all = new Map();
      for (const b of this.buckets) {
        if (b.start < oldest) continue;
        for (const [k, v] of b[key]) all.set(k, (all.get(k) ?? 0) + v);
      }
      return [...all].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
    };
    return { dest: sum("dest"), client: sum("client"), node: sum("node") };
  }

  /** Forgets everything (the "clear" button). */
  reset() {
    this.total = 0;
    this.missed = 0;
    this.filteredGaps = 0;
    this.rate.fill(0);
    this.buckets = [];
    this.nodeRate.clear();
  }
}

/** Draws `series` (entries per second) as bars on `canvas`, sized for the device's pixels. */
export function drawRate(canvas, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  const css = getComputedStyle(canvas);
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...series);
  const bw = w / series.length;
  ctx.fillStyle = css.getPropertyValue("--chart-bar").trim() || "#3b82f6";
  series.forEach((v, i) => {
    const bh = Math.round((v / max) * (h - 2 * dpr));
    if (bh > 0) ctx.fillRect(Math.floor(i * bw), h - bh, Math.max(1, Math.ceil(bw) - dpr), bh);
  });
  ctx.fillStyle = css.getPropertyValue("--chart-text").trim() || "#666";
  ctx.font = `${10 * dpr}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  ctx.fillText(`max ${max}/s`, 2 * dpr, 1 * dpr);
  // Lets a test (or a curious reader) see that the chart is live: the second it was drawn for.
  canvas.dataset.drawn = String(Math.floor(Date.now() / 1000));
}
