// stream.js — the connection to the daemon (CONTRACT.md §1–2): a single-use token from
// /api/ws-token with Basic credentials, the WebSocket /api/ws/logs, reconnection with capped and
// jittered exponential backoff resuming with `since=<last id>`, an application `ping` every 30 s,
// and gap detection (an id that jumps). Credentials stay in this object's memory only.

/** Seconds between our literal `ping` messages (the contract's interval). */
const PING_EVERY_MS = 30_000;
/** Silence (no entry, no `pong`) after which the socket is taken for dead and replaced. */
const DEAD_AFTER_MS = 75_000;
/** First backoff step, and the cap of every step. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
/** Entries asked for when the daemon refused a `since` it no longer holds (capped by its history). */
const FALLBACK_BACKLOG = 100_000;
/** A socket open this long (or that delivered an entry) resets the backoff. */
const STABLE_AFTER_MS = 10_000;

/** A failed token request: `status` 401 (bad credentials), 429 (throttled) or 0 (network). */
export class TokenError extends Error {
  constructor(status, message, retryAfterSecs = null) {
    super(message);
    this.status = status;
    this.retryAfterSecs = retryAfterSecs;
  }
}

/** `Retry-After` as seconds (it may be a number of seconds or an HTTP date), or null. */
export function parseRetryAfter(value, now = Date.now()) {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return parseInt(v, 10);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** `Basic base64(user:pass)`, UTF-8 encoded as RFC 7617 asks for with charset="UTF-8". */
export function basicAuth(user, pass) {
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return "Basic " + btoa(bin);
}

/** The delay before reconnection attempt `attempt` (0-based): equal jitter under a cap. */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Asks the daemon for a WebSocket token; throws a TokenError on any failure. */
export async function fetchToken(authorization) {
  let res;
  try {
    // Relative to the page, so a reverse proxy may mount the dashboard under a path prefix.
    res = await fetch("api/ws-token", {
      headers: { Authorization: authorization },
      cache: "no-store",
      // Never let the browser add (or prompt for) credentials of its own: we send them ourselves.
      credentials: "omit",
      redirect: "error",
    });
  } catch (e) {
    throw new TokenError(0, "The daemon cannot be reached.");
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: reported below by status */ }
  if (res.ok && body && typeof body.token === "string") return body.token;
  if (res.status === 401) throw new TokenError(401, "Wrong user name or password.");
  if (res.status === 429) {
    const secs = parseRetryAfter(res.headers.get("Retry-After"));
    throw new TokenError(429, "Too many failed sign-ins from this address.", secs);
  }
  const detail = body && typeof body.message === "string" ? `: ${body.message}` : "";
  throw new TokenError(res.status || 0, `The daemon answered ${res.status}${detail}.`);
}

/**
 * One logical subscription that survives reconnections. Callbacks:
 * - onEntry(entry): each entry once, in id order (duplicates at a seam are dropped);
 * - onState(state, detail): "connecting" | "live" | "waiting" | "signed-out";
 * - onGap(from, to): ids from..to never arrived (history lost);
 * - onSignedOut(reason): the credentials stopped working; the caller shows the sign-in form.
 */
export class LogStream {
  constructor({ onEntry, onState, onGap, onSignedOut, backlog = 200 }) {
    this.onEntry = onEntry;
    this.onState = onState;
    this.onGap = onGap;
    this.onSignedOut = onSignedOut;
    /** Entries asked for on the first connection, for context. */
    this.backlog = backlog;
    /** The Authorization header value; null when signed out. */
    this.authorization = null;
    /** Highest id received: the `since` of the next connection. */
    this.lastId = 0;
    /** Reconnection attempts since the last stable connection. */
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.pinger = null;
    this.lastHeard = 0;
    this.openedAt = 0;
    /** The current connection resumed with `since`, and how many entries it delivered. */
    this.usedSince = false;
    this.receivedHere = 0;
    /** The daemon refused our `since` (closed 4008 before sending anything): ask for a backlog. */
    this.sinceRefused = false;
    /** Connections opened (the first one is not a reconnect). */
    this.connections = 0;
    this.onOnline = () => { if (this.timer) this.#retryNow(); };
    addEventListener("online", this.onOnline);
  }

  /** Checks the credentials with a first token and, if good, connects. Throws TokenError. */
  async signIn(user, pass) {
    const authorization = basicAuth(user, pass);
    this.onState("connecting", "Signing in…");
    const token = await fetchToken(authorization);
    this.authorization = authorization;
    this.attempt = 0;
    this.#open(token);
  }

  /** Closes the socket and forgets the credentials. */
  signOut() {
    this.authorization = null;
    this.#teardown();
    this.socket?.close(1000, "signed out");
    this.socket = null;
    this.onState("signed-out", "");
  }

  /** Forgets the last id (after sign-out: the next sign-in starts with a backlog again). */
  resetPosition() {
    this.lastId = 0;
  }

  #url(token) {
    const url = new URL("api/ws/logs", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    let q = `token=${encodeURIComponent(token)}`;
    if (this.lastId > 0 && !this.sinceRefused) q += `&since=${this.lastId}`;
    // After a refused `since`, take whatever the daemon still holds: the first id shows the gap.
    else q += `&backlog=${this.lastId > 0 ? FALLBACK_BACKLOG : this.backlog}`;
    url.search = q;
    url.hash = "";
    return url.href;
  }

  #open(token) {
    this.#teardown();
    const ws = new WebSocket(this.#url(token));
    this.usedSince = this.lastId > 0 && !this.sinceRefused;
    this.sinceRefused = false;
    this.receivedHere = 0;
    this.socket = ws;
    this.lastHeard = Date.now();
    ws.onopen = () => {
      this.openedAt = Date.now();
      this.connections++;
      this.onState("live", this.connections > 1 ? "Reconnected" : "");
    };
    ws.onmessage = (ev) => this.#message(ev.data);
    ws.onclose = (ev) => {
      if (this.socket !== ws) return;
      this.socket = null;
      this.#closed(ev.code, ev.reason);
    };
    this.pinger = setInterval(() => this.#ping(ws), PING_EVERY_MS);
  }

  #message(data) {
    this.lastHeard = Date.now();
    if (data === "pong" || typeof data !== "string") return;
    let e;
    try { e = JSON.parse(data); } catch { return; }
    if (!e || typeof e.id !== "number") return;
    if (e.id <= this.lastId) return; // already shown (a seam that overlapped)
    if (this.lastId > 0 && e.id > this.lastId + 1) this.onGap(this.lastId + 1, e.id - 1);
    this.lastId = e.id;
    this.receivedHere++;
    this.attempt = 0;
    this.onEntry(e);
  }

  #ping(ws) {
    if (ws !== this.socket) return;
    if (Date.now() - this.lastHeard > DEAD_AFTER_MS) {
      // Nothing heard for too long: the peer or the path is gone without a close. Replace it.
      ws.onclose = null;
      ws.close();
      this.socket = null;
      this.#closed(0, "no answer");
      return;
    }
    if (Date.now() - this.openedAt > STABLE_AFTER_MS) this.attempt = 0;
    if (ws.readyState === WebSocket.OPEN) ws.send("ping");
  }

  /** Decides what a close means (CONTRACT.md §2's table) and schedules the next connection. */
  #closed(code, reason) {
    this.#teardown();
    if (!this.authorization) return;
    let why;
    let immediate = false;
    switch (code) {
      case 4001:
      case 4003:
        why = "Token refused; getting a new one";
        immediate = this.attempt === 0;
        break;
      case 4008:
        why = "Fell behind; catching up";
        immediate = this.attempt === 0;
        // Refused at once, nothing delivered: the daemon no longer holds the ids after `since`.
        if (this.usedSince && this.receivedHere === 0) this.sinceRefused = true;
        break;
      case 1001:
        why = "The daemon is restarting";
        break;
      default:
        why = reason ? `Connection lost (${code} ${reason})` : `Connection lost${code ? ` (${code})` : ""}`;
    }
    // Only the first of a run of such closes is retried at once; repeats back off.
    const delay = immediate ? 0 : backoffDelay(this.attempt);
    this.attempt++;
    this.#schedule(delay, why);
  }

  #schedule(delay, why) {
    clearTimeout(this.timer);
    this.retryAt = Date.now() + delay;
    this.onState("waiting", why, this.retryAt);
    this.timer = setTimeout(() => this.#retryNow(), delay);
  }

  async #retryNow() {
    clearTimeout(this.timer);
    this.timer = null;
    const authorization = this.authorization;
    if (!authorization) return;
    this.onState("connecting", "Reconnecting…");
    let token;
    try {
      token = await fetchToken(authorization);
    } catch (e) {
      if (this.authorization !== authorization) return;
      if (e.status === 401) {
        this.authorization = null;
        this.onState("signed-out", "");
        this.onSignedOut("The daemon no longer accepts these credentials. Please sign in again.");
        return;
      }
      if (e.status === 429 && e.retryAfterSecs !== null) {
        this.#schedule(e.retryAfterSecs * 1000, "Sign-ins from this address are throttled");
        return;
      }
      this.#schedule(backoffDelay(this.attempt++), e.message);
      return;
    }
    if (this.authorization !== authorization) return;
    this.#open(token);
  }

  #teardown() {
    clearInterval(this.pinger);
    this.pinger = null;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
