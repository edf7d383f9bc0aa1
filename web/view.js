// view.js — the live table: a bounded number of rows in the DOM, new entries rendered in batches
// once per animation frame, newest-first or follow-tail, rebuilt from the kept entries when the
// filters, the order or the pause state change. Keyboard: arrows move between rows, Enter opens.
import { statusClass, formatBytes, formatElapsed } from "./entry.js";

export class Table {
  /**
   * @param {HTMLElement} tbody where rows go
   * @param {HTMLElement} scroller the element that scrolls (follow-tail keeps it at the bottom)
   * @param {{maxRows?: number, source: () => object[], onOpen: (e: object, row: HTMLElement) => void}} opts
   */
  constructor(tbody, scroller, { maxRows = 500, source, onOpen }) {
    this.tbody = tbody;
    this.scroller = scroller;
    /** Bound on rows in the DOM, whatever the arrival rate. */
    this.maxRows = maxRows;
    /** The kept entries, oldest first (owned by the app). */
    this.source = source;
    this.onOpen = onOpen;
    /** Predicate of the filters, or null for "everything". */
    this.filter = null;
    /** "newest" (newest row on top) or "tail" (oldest on top, scrolled to the bottom). */
    this.order = "newest";
    this.paused = false;
    /** Entries arrived since the last frame, oldest first. */
    this.pending = [];
    /** Rebuild everything at the next frame instead of adding `pending`. */
    this.dirty = true;
    this.frame = 0;
    /** Highest id on screen (the paused view ends there). */
    this.shownUpTo = 0;
    this.template = this.#template();
    tbody.addEventListener("click", (ev) => {
      const row = ev.target.closest(".row");
      if (row && row.entry) this.onOpen(row.entry, row);
    });
    tbody.addEventListener("keydown", (ev) => this.#key(ev));
    scroller.addEventListener("keydown", (ev) => {
      if (ev.target === scroller && (ev.key === "ArrowDown" || ev.key === "Enter")) {
        const first = this.tbody.firstElementChild;
        if (first) { ev.preventDefault(); first.focus(); }
      }
    });
  }

  #template() {
    const tr = document.createElement("div");
    tr.setAttribute("role", "row");
    tr.tabIndex = -1;
    for (const name of ["id", "time", "client", "method", "dest", "status", "bytes", "elapsed"]) {
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
    c[2].textContent = e.client_ip ?? "—";
    c[3].textContent = e.method ?? "—";
    c[4].textContent = e.destination ?? "—";
    c[4].title = e.destination ?? "";
    c[5].textContent = klass === "denied" ? `${e.status ?? ""} DENIED` : (e.status ?? "—");
    c[6].textContent = formatBytes(e.bytes);
    if (typeof e.bytes === "number") c[6].title = `${e.bytes} bytes`;
    c[7].textContent = formatElapsed(e.elapsed_ms);
    return tr;
  }

  /** A new entry (already kept by the app); drawn at the next frame unless paused. */
  push(e) {
    if (this.paused || this.dirty) return;
    this.pending.push(e);
    if (this.pending.length > this.maxRows * 4) this.pending.splice(0, this.pending.length - this.maxRows);
    this.#schedule();
  }

  setFilter(filter) { this.filter = filter; this.rebuild(); }
  setOrder(order) { this.order = order; this.rebuild(); }
  setPaused(paused) { this.paused = paused; if (!paused) this.rebuild(); }

  /** Redraws from the kept entries at the next frame. */
  rebuild() {
    this.dirty = true;
    this.pending = [];
    this.#schedule();
  }

  #schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  /** The rows that would be drawn: the newest `maxRows` kept entries that pass the filter. */
  visible() {
    const all = this.source();
    const out = [];
    for (let i = all.length - 1; i >= 0 && out.length < this.maxRows; i--) {
      if (!this.filter || this.filter(all[i])) out.push(all[i]);
    }
    return out.reverse();
  }

  /** Draws what changed since the last frame (called from requestAnimationFrame). */
  render() {
    if (this.paused && !this.dirty) return;
    const atBottom = this.scroller.scrollTop + this.scroller.clientHeight >= this.scroller.scrollHeight - 4;
    let add;
    if (this.dirty) {
      this.tbody.textContent = "";
      add = this.visible();
      this.dirty = false;
    } else {
      add = this.filter ? this.pending.filter(this.filter) : this.pending;
      if (add.length > this.maxRows) add = add.slice(add.length - this.maxRows);
    }
    this.pending = [];
    if (add.length) {
      const frag = document.createDocumentFragment();
      if (this.order === "newest") {
        for (let i = add.length - 1; i >= 0; i--) frag.appendChild(this.#row(add[i]));
        this.tbody.prepend(frag);
      } else {
        for (const e of add) frag.appendChild(this.#row(e));
        this.tbody.append(frag);
      }
      this.shownUpTo = Math.max(this.shownUpTo, add[add.length - 1].id);
    }
    const extra = this.tbody.childElementCount - this.maxRows;
    for (let i = 0; i < extra; i++) {
      (this.order === "newest" ? this.tbody.lastElementChild : this.tbody.firstElementChild).remove();
    }
    if (this.order === "tail" && (atBottom || add.length === this.tbody.childElementCount)) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    }
  }

  #key(ev) {
    const row = ev.target.closest(".row");
    if (!row) return;
    let next = null;
    switch (ev.key) {
      case "Enter":
      case " ":
        ev.preventDefault();
        if (row.entry) this.onOpen(row.entry, row);
        return;
      case "ArrowDown": next = row.nextElementSibling; break;
      case "ArrowUp": next = row.previousElementSibling; break;
      case "Home": next = this.tbody.firstElementChild; break;
      case "End": next = this.tbody.lastElementChild; break;
      case "Escape": ev.preventDefault(); this.scroller.focus(); return;
      default: return;
    }
    ev.preventDefault();
    next?.focus();
  }
}
