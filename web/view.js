// view.js — the live table. It holds at most `maxRows` entries (the newest received; the daemon
// filters) and puts only the rows in view (plus a margin) into the DOM, positioned absolutely, so the page
// does the same small amount of layout and paint whatever the arrival rate. New entries are
// added once per animation frame; newest-first keeps a reader's place when they scrolled down,
// follow-tail sticks to the bottom. Keyboard: arrows, Page Up/Down, Home/End move, Enter opens.
// A click on a row's client, destination, status or user adds a quick filter (the entry dialog
// offers the same from the keyboard).
import { statusClass, formatBytes, formatElapsed, quickTerm } from "./entry.js";

/** Height of one row in CSS pixels (style.css gives `.body .row` the same height). */
export const ROW_PX = 28;
/** Rows rendered above and below the visible ones. */
const OVERSCAN = 8;

/**
 * Fills `cell` with `text`, as a button that adds the quick filter `term` when there is one. The
 * button is out of the tab order (the rows are navigated with the arrows; the entry dialog has the
 * same filters for the keyboard).
 */
export function quick(cell, text, term) {
  if (!term) {
    cell.textContent = text;
    return;
  }
  const b = document.createElement("button");
  b.type = "button";
  b.className = "q";
  b.tabIndex = -1;
  b.dataset.term = term;
  b.title = `Filter: ${term}`;
  b.textContent = text;
  cell.appendChild(b);
}

export class Table {
  /**
   * @param {HTMLElement} body the row container (`role=rowgroup`), sized to all rows
   * @param {HTMLElement} scroller the element that scrolls
   * @param {{maxRows?: number, source: () => object[], onOpen: (e: object, row: HTMLElement) => void,
   *   onQuick: (term: string) => void}} opts
   */
  constructor(body, scroller, { maxRows = 500, source, onOpen, onQuick }) {
    this.body = body;
    this.scroller = scroller;
    /** Bound on the entries the table holds, whatever the arrival rate. */
    this.maxRows = maxRows;
    /** The app's kept entries, oldest first (for rebuilding after a pause or a clear). */
    this.source = source;
    this.onOpen = onOpen;
    this.onQuick = onQuick;
    /** "newest" (newest row on top) or "tail" (oldest on top, scrolled to the bottom). */
    this.order = "newest";
    this.paused = false;
    /** Follow-tail only: the reader is at the bottom, so new rows scroll into view. */
    this.follow = true;
    /** The entries the table holds, oldest first, at most `maxRows`. */
    this.items = [];
    /** Entries arrived since the last frame, oldest first. */
    this.pending = [];
    /** Rebuild `items` from `source` at the next frame instead of adding `pending`. */
    this.dirty = true;
    this.frame = 0;
    /** Highest id in `items` (the paused view ends there). */
    this.shownUpTo = 0;
    /** Rendered row elements by entry id. */
    this.rendered = new Map();
    /** An entry with a `node` was drawn: the node column is shown from then on. */
    this.hasNode = false;
    this.template = this.#template();
    body.addEventListener("click", (ev) => {
      const quick = ev.target.closest("button.q");
      if (quick) {
        this.onQuick(quick.dataset.term);
        return;
      }
      const row = ev.target.closest(".row");
      if (row && row.entry) this.onOpen(row.entry, row);
    });
    body.addEventListener("keydown", (ev) => this.#key(ev));
    scroller.addEventListener("keydown", (ev) => {
      if (ev.target === scroller && (ev.key === "ArrowDown" || ev.key === "Enter")) {
        ev.preventDefault();
        this.focusIndex(this.#firstVisibleIndex());
      }
    });
    scroller.addEventListener("scroll", () => {
      this.follow = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - ROW_PX / 2;
      this.#schedule();
    }, { passive: true });
    addEventListener("resize", () => this.#schedule());
  }

  #template() {
    const tr = document.createElement("div");
    tr.setAttribute("role", "row");
    tr.tabIndex = -1;
    for (const name of ["id", "time", "node", "client", "method", "dest", "status", "user", "bytes", "elapsed"]) {
      const td = document.createElement("span");
      td.setAttribute("role", "cell");
      td.className = `c-${name}`;
      tr.appendChild(td);
    }
    return tr;
  }

  #row(e) {
    const tr = this.template.cloneNode(true);
    tr.entry = e;
    tr.dataset.id = e.id;
    const klass = statusClass(e);
    tr.className = e.id % 2 ? `row st-${klass} odd` : `row st-${klass}`;
    const c = tr.children;
    c[0].textContent = e.id;
    const ts = typeof e.timestamp === "string" ? e.timestamp : "";
    c[1].textContent = ts.length >= 19 ? ts.slice(11, 19) : ts;
    c[1].title = ts;
    // The node column shows only once an entry has one (a fleet central's, CONTRACT §10).
    if (typeof e.node === "string") {
      quick(c[2], e.node, quickTerm("node", e));
      if (!this.hasNode) {
        this.hasNode = true;
        this.body.parentElement.classList.add("has-node");
      }
    }
    quick(c[3], e.client_ip ?? "—", quickTerm("client", e));
    c[4].textContent = e.method ?? "—";
    quick(c[5], e.destination ?? "—", quickTerm("domain", e));
    c[5].title = e.destination ?? "";
    // "<code> <phrase>": a phone hides the phrase; a denial says so in words, not only colour.
    const status = typeof e.status === "string" ? e.status : "—";
    const space = status.indexOf(" ");
    quick(c[6], space < 0 ? status : status.slice(0, space), quickTerm("status", e));
    if (space >= 0) {
      const phrase = document.createElement("span");
      phrase.className = "phrase";
      phrase.textContent = status.slice(space);
      c[6].appendChild(phrase);
    }
    if (klass === "denied") {
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = "denied";
      c[6].append(" ", flag);
    }
    c[6].title = `${status} · ${e.result ?? ""}`;
    quick(c[7], e.user ?? "—", e.user === null || e.user === undefined ? null : quickTerm("user", e));
    c[8].textContent = formatBytes(e.bytes);
    if (typeof e.bytes === "number") c[8].title = `${e.bytes} bytes`;
    c[9].textContent = formatElapsed(e.elapsed_ms);
    return tr;
  }

  /** A new entry (already kept by the app); drawn at the next frame unless paused. */
  push(e) {
    if (this.paused || this.dirty) return;
    this.pending.push(e);
    // No frame for a while (a hidden tab): stop collecting and refill from the kept entries.
    if (this.pending.length > this.maxRows * 4) this.rebuild();
    else this.#schedule();
  }

  setOrder(order) {
    this.order = order;
    this.follow = true;
    this.scroller.scrollTop = 0;
    this.rebuild();
  }
  setPaused(paused) { this.paused = paused; if (!paused) this.rebuild(); }

  /** Refills from the kept entries at the next frame. */
  rebuild() {
    this.dirty = true;
    this.pending = [];
    this.#schedule();
  }

  /** Entries the table holds now (the "shown" figure). */
  count() { return this.items.length; }

  #schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  /** The newest `maxRows` kept entries, oldest first. */
  #select() {
    const all = this.source();
    const out = [];
    // A paused view keeps showing what it showed, whatever arrived since.
    const limit = this.paused ? this.shownUpTo : Infinity;
    for (let i = all.length - 1; i >= 0 && out.length < this.maxRows; i--) {
      if (all[i].id <= limit) out.push(all[i]);
    }
    return out.reverse();
  }

  /** The entry at display position `i` (0 = top). */
  #at(i) {
    return this.order === "newest" ? this.items[this.items.length - 1 - i] : this.items[i];
  }

  #firstVisibleIndex() {
    return Math.max(0, Math.floor((this.scroller.scrollTop) / ROW_PX));
  }

  /** Takes in what arrived (unless paused), keeps the reader's place, draws the rows in view. */
  render() {
    const s = this.scroller;
    if (this.dirty) {
      this.items = this.#select();
      this.dirty = false;
      this.pending = [];
    } else if (!this.paused && this.pending.length) {
      const add = this.pending;
      this.pending = [];
      const before = this.items.length;
      this.items.push(...(add.length > this.maxRows ? add.slice(add.length - this.maxRows) : add));
      const removed = Math.max(0, this.items.length - this.maxRows);
      if (removed) this.items.splice(0, removed);
      const added = this.items.length - before + removed;
      // Keep what the reader is looking at in place: rows are added above it (newest first)
      // or removed above it (follow tail, unless stuck to the bottom).
      if (this.order === "newest" && s.scrollTop > 0 && added) s.scrollTop += added * ROW_PX;
      if (this.order === "tail" && !this.follow && removed) s.scrollTop -= removed * ROW_PX;
    }
    const n = this.items.length;
    if (!this.paused) this.shownUpTo = n ? this.items[n - 1].id : this.shownUpTo;
    this.body.style.height = `${n * ROW_PX}px`;
    this.body.parentElement.setAttribute("aria-rowcount", String(n + 1));
    if (this.order === "tail" && this.follow) s.scrollTop = s.scrollHeight;
    this.#paint();
  }

  /** Puts the rows in view into the DOM, reusing the ones already there. */
  #paint(keep = -1) {
    const s = this.scroller;
    const n = this.items.length;
    const top = Math.max(0, s.scrollTop - this.body.offsetTop);
    const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN);
    const last = Math.min(n - 1, Math.ceil((top + s.clientHeight) / ROW_PX) + OVERSCAN);
    const focusedId = document.activeElement?.parentElement === this.body
      ? Number(document.activeElement.dataset.id) : NaN;
    const next = new Map();
    const place = (i) => {
      const e = this.#at(i);
      if (!e || next.has(e.id)) return;
      let row = this.rendered.get(e.id);
      if (!row) { row = this.#row(e); this.body.appendChild(row); }
      row.style.transform = `translateY(${i * ROW_PX}px)`;
      row.dataset.idx = i;
      row.setAttribute("aria-rowindex", String(i + 2));
      next.set(e.id, row);
    };
    for (let i = first; i <= last; i++) place(i);
    if (keep >= 0 && keep < n) place(keep);
    for (const [id, row] of this.rendered) {
      if (next.has(id)) continue;
      // The focused row stays (off screen) while it is still held, so focus is not lost.
      if (id === focusedId && this.items.some((e) => e.id === id)) {
        const i = this.order === "newest"
          ? n - 1 - this.items.findIndex((e) => e.id === id)
          : this.items.findIndex((e) => e.id === id);
        row.style.transform = `translateY(${i * ROW_PX}px)`;
        row.dataset.idx = i;
        next.set(id, row);
        continue;
      }
      row.remove();
    }
    this.rendered = next;
  }

  /** Scrolls display position `i` into view and focuses its row. */
  focusIndex(i) {
    const n = this.items.length;
    if (!n) return;
    i = Math.max(0, Math.min(n - 1, i));
    const s = this.scroller;
    const head = this.body.offsetTop;
    const y = i * ROW_PX;
    if (y < s.scrollTop) s.scrollTop = y;
    else if (y + ROW_PX + head > s.scrollTop + s.clientHeight) s.scrollTop = y + ROW_PX + head - s.clientHeight;
    this.#paint(i);
    const e = this.#at(i);
    this.rendered.get(e.id)?.focus({ preventScroll: true });
  }

  #key(ev) {
    const row = ev.target.closest(".row");
    if (!row) return;
    const i = Number(row.dataset.idx);
    const page = Math.max(1, Math.floor(this.scroller.clientHeight / ROW_PX) - 2);
    switch (ev.key) {
      case "Enter":
      case " ":
        ev.preventDefault();
        if (row.entry) this.onOpen(row.entry, row);
        return;
      case "ArrowDown": ev.preventDefault(); this.focusIndex(i + 1); return;
      case "ArrowUp": ev.preventDefault(); this.focusIndex(i - 1); return;
      case "PageDown": ev.preventDefault(); this.focusIndex(i + page); return;
      case "PageUp": ev.preventDefault(); this.focusIndex(i - page); return;
      case "Home": ev.preventDefault(); this.focusIndex(0); return;
      case "End": ev.preventDefault(); this.focusIndex(this.items.length - 1); return;
      case "Escape": ev.preventDefault(); this.scroller.focus(); return;
      default:
    }
  }
}
