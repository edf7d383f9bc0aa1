// stream.js — the connection to the daemon (CONTRACT.md §1–2, §11): sign-in opens a session
// (POST /api/session with Basic credentials once; the daemon sets an HttpOnly cookie), then every
// single-use token comes from /api/ws-token with that cookie; the WebSocket /api/ws/logs with the
// server-side filter (§6), reconnection with capped and jittered exponential backoff resuming with
// `since=<last id>` (and the filter), an application `ping` every 30 s, and gap detection: an id
// that jumps when unfiltered, the daemon's `gap` messages when filtered (a filtered stream's ids
// jump by design). The password is used for the one sign-in request and kept nowhere: not in this
// object, not in any browser storage.

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

/** The daemon refused a filter (its close reason, CONTRACT §6), or the switch to it failed. */
export class FilterError extends Error {}

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

/**
 * A request to the daemon's API (relative to the page, so a reverse proxy may mount the dashboard
 * under a path prefix) with the session cookie; resolves to the parsed JSON body (or null) and
 * throws a TokenError on a network failure or a status other than 2xx.
 */
async function api(path, { method = "GET", headers = {}, unauthorized = "Please sign in." } = {}) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      cache: "no-store",
      // The session cookie (HttpOnly: this script never sees it) goes to this origin only.
      credentials: "same-origin",
      redirect: "error",
    });
  } catch (e) {
    throw new TokenError(0, "The daemon cannot be reached.");
  }
  let body = null;
  try { body = await res.json(); } catch { /* no or not JSON: reported below by status */ }
  if (res.ok) return body;
  if (res.status === 401) throw new TokenError(401, unauthorized);
  if (res.status === 429) {
    const secs = parseRetryAfter(res.headers.get("Retry-After"));
    throw new TokenError(429, "Too many failed sign-ins from this address.", secs);
  }
  const detail = body && typeof body.message === "string" ? `: ${body.message}` : "";
  throw new TokenError(res.status || 0, `The daemon answered ${res.status}${detail}.`);
}

/** Opens a session with the password (one check on the daemon); resolves to the user name. */
export async function openSession(user, pass) {
  const body = await api("api/session", {
    method: "POST",
    headers: { Authorization: basicAuth(user, pass) },
    unauthorized: "Wrong user name or password.",
  });
  return body && typeof body.user === "string" ? body.user : user;
}

/** The user name of the current session; throws a TokenError (401 when there is none). */
export async function currentSession() {
  const body = await api("api/session");
  if (body && typeof body.user === "string") return body.user;
  throw new TokenError(0, "The daemon gave no user name.");
}

/** Ends the session (sign-out); the daemon clears the cookie. Failures are not reported. */
export async function endSession() {
  try { await api("api/session", { method: "DELETE" }); } catch { /* signed out locally anyway */ }
}

/** A single-use WebSocket token minted from the session cookie; throws a TokenError. */
export async function fetchToken() {
  const body = await api("api/ws-token", { unauthorized: "Your session has ended. Please sign in again." });
  if (body && typeof body.token === "string") return body.token;
  throw new TokenError(0, "The daemon gave no token.");
}

/**
 * One logical subscription that survives reconnections. Callbacks:
 * - onEntry(entry): each entry once, in id order (duplicates at a seam are dropped);
 * - onState(state, detail): "connecting" | "live" | "waiting" | "signed-out";
 * - onGap(from, to): ids from..to never arrived (history lost; unfiltered streams);
 * - onFilteredGap(after, before): entries matching the filter with ids between these (exclusive)
 *   are gone (the daemon's `gap` message);
 * - onReset(): a new filter was accepted; what was received so far belongs to the old one;
 * - onFilterRefused(reason): the daemon refused the filter a connection was opened with (a
 *   bookmarked one); the stream goes on without a filter;
 * - onSignedOut(reason): the session ended (sign-out elsewhere, expiry, user removed); the caller
 *   shows the sign-in form.
 */
export class LogStream {
  constructor({
    onEntry, onState, onGap, onFilteredGap, onReset, onFilterRefused, onSignedOut, backlog = 200,
  }) {
    this.onEntry = onEntry;
    this.onState = onState;
    this.onGap = onGap;
    this.onFilteredGap = onFilteredGap;
    this.onReset = onReset;
    this.onFilterRefused = onFilterRefused;
    this.onSignedOut = onSignedOut;
    /** Entries asked for on the first connection and after a filter change, for context. */
    this.backlog = backlog;
    /** The filter (CONTRACT §6) the current subscription was accepted with; "" for none. */
    this.filter = "";
    /** A subscription with a new filter, open beside the current one until the daemon accepts it. */
    this.candidate = null;
    /** Bumped by every setFilter, so only the newest one opens a candidate. */
    this.filterSeq = 0;
    /** The current connection has heard from the daemon (so a 1008 is not about its filter). */
    this.heard = false;
    /** True while signed in (the session lives in the daemon's HttpOnly cookie, not here). */
    this.signedIn = false;
    /**
     * Bumped at every sign-in, sign-out and filter switch, so a reconnection begun before one is
     * dropped after it.
     */
    this.epoch = 0;
    /** The sign-out request in flight (or done), awaited before the next sign-in. */
    this.signingOut = Promise.resolve();
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

  /** Opens a session with the password, then connects; resolves to the user name. Throws TokenError. */
  async signIn(user, pass) {
    this.onState("connecting", "Signing in…");
    // A sign-out still under way would clear the new cookie with its answer: let it finish first.
    await this.signingOut;
    const name = await openSession(user, pass);
    await this.resume();
    return name;
  }

  /** Connects with the session already open (a reload). Throws TokenError (401: no session). */
  async resume() {
    this.onState("connecting", "Connecting…");
    const epoch = ++this.epoch;
    const token = await fetchToken();
    if (epoch !== this.epoch) return;
    this.signedIn = true;
    this.attempt = 0;
    this.#open(token);
  }

  /**
   * Switches to filter `expr` (trimmed; "" for none). A new subscription with a backlog of matches
   * opens beside the current one, which keeps running, so the view stays usable until the daemon
   * has answered: its first message (an entry, a `gap`, or the `pong` to the `ping` sent on open)
   * accepts the filter, and the old socket is closed; a close before that refuses it (1008 with the
   * reason naming the problem) and nothing changes. Resolves once switched; throws a FilterError
   * (refused, or superseded by a later call) or a TokenError.
   */
  async setFilter(expr) {
    expr = expr.trim();
    this.#dropCandidate("Replaced by a newer filter.");
    const seq = ++this.filterSeq;
    // Back to the filter in force (typed and undone): nothing to switch, and nothing pending.
    if (expr === this.filter) return;
    let token;
    try {
      token = await fetchToken();
    } catch (e) {
      if (e.status === 401 && this.signedIn) this.#sessionEnded();
      throw e;
    }
    if (seq !== this.filterSeq) throw new FilterError("Replaced by a newer filter.");
    if (!this.signedIn) throw new FilterError("Signed out.");
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.#url(token, expr, 0));
      const candidate = { ws, expr, resolve, reject };
      this.candidate = candidate;
      ws.onopen = () => ws.send("ping");
      ws.onmessage = (ev) => {
        if (this.candidate === candidate) this.#adopt(candidate);
        if (this.socket === ws) this.#message(ev.data);
      };
      ws.onclose = (ev) => {
        if (this.candidate === candidate) {
          this.candidate = null;
          const detail = `${ev.code || "no code"}${ev.reason ? ` ${ev.reason}` : ""}`;
          reject(new FilterError(ev.code === 1008 && ev.reason
            ? ev.reason
            : `The daemon closed the connection (${detail}); try again`));
          return;
        }
        if (this.socket !== ws) return;
        this.socket = null;
        this.#closed(ev.code, ev.reason);
      };
    });
  }

  /** The daemon accepted the candidate: it becomes the stream, from a fresh start. */
  #adopt(candidate) {
    this.candidate = null;
    // A reconnection of the old subscription still under way is dropped (it would replace this).
    this.epoch++;
    const old = this.socket;
    this.#teardown();
    if (old) {
      old.onclose = null;
      old.onmessage = null;
      old.close(1000, "filter changed");
    }
    this.filter = candidate.expr;
    this.lastId = 0;
    this.sinceRefused = false;
    this.onReset();
    this.#watch(candidate.ws, false);
    this.heard = true;
    this.openedAt = Date.now();
    this.onState("live", "");
    candidate.resolve();
  }

  /** Closes a candidate subscription still waiting for the daemon's answer. */
  #dropCandidate(why) {
    const c = this.candidate;
    if (!c) return;
    this.candidate = null;
    c.ws.onclose = null;
    c.ws.onmessage = null;
    c.ws.close(1000, "not needed");
    c.reject(new FilterError(why));
  }

  /** Closes the socket and ends the session. */
  signOut() {
    this.#dropCandidate("Signed out.");
    this.signedIn = false;
    this.epoch++;
    this.signingOut = endSession();
    this.#teardown();
    this.socket?.close(1000, "signed out");
    this.socket = null;
    this.onState("signed-out", "");
  }

  /**
   * Closes the live subscription and any reconnection under way, staying signed in (a search
   * replaces the live table); `resume()` reopens it with a backlog.
   */
  stop() {
    this.#dropCandidate("Replaced by a search.");
    // A filter switch still waiting for its token opens nothing after this.
    this.filterSeq++;
    this.epoch++;
    this.#teardown();
    const ws = this.socket;
    this.socket = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(1000, "search");
    }
    this.lastId = 0;
  }

  /** Forgets the last id (after sign-out: the next sign-in starts with a backlog again). */
  resetPosition() {
    this.lastId = 0;
  }

  /** The stream's URL: after `lastId` (0: a backlog) with `filter`. */
  #url(token, filter = this.filter, lastId = this.lastId) {
    const url = new URL("api/ws/logs", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    let q = `token=${encodeURIComponent(token)}`;
    if (lastId > 0 && !this.sinceRefused) q += `&since=${lastId}`;
    // After a refused `since`, take whatever the daemon still holds: the first id shows the gap.
    else q += `&backlog=${lastId > 0 ? FALLBACK_BACKLOG : this.backlog}`;
    if (filter) q += `&filter=${encodeURIComponent(filter)}`;
    url.search = q;
    url.hash = "";
    return url.href;
  }

  #open(token) {
    this.#teardown();
    const ws = new WebSocket(this.#url(token));
    this.#watch(ws, this.lastId > 0 && !this.sinceRefused);
    this.sinceRefused = false;
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
  }

  /** Makes `ws` the stream's socket (its handlers are the caller's) and starts pinging on it. */
  #watch(ws, usedSince) {
    this.usedSince = usedSince;
    this.receivedHere = 0;
    this.heard = false;
    this.socket = ws;
    this.lastHeard = Date.now();
    this.pinger = setInterval(() => this.#ping(ws), PING_EVERY_MS);
  }

  #message(data) {
    this.lastHeard = Date.now();
    this.heard = true;
    if (data === "pong" || typeof data !== "string") return;
    let e;
    try { e = JSON.parse(data); } catch { return; }
    if (!e || typeof e !== "object") return;
    // Control messages (CONTRACT §6) have a `type` and no `id`: never entries.
    if (e.type === "gap" && typeof e.after === "number" && typeof e.before === "number") {
      this.onFilteredGap(e.after, e.before);
      return;
    }
    if (typeof e.id !== "number") return;
    if (e.id <= this.lastId) return; // already shown (a seam that overlapped)
    // A filtered stream's ids jump by design: its losses come as `gap` messages instead.
    if (!this.filter && this.lastId > 0 && e.id > this.lastId + 1) this.onGap(this.lastId + 1, e.id - 1);
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
    if (!this.signedIn) return;
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
      case 1008:
        // Refused before a word: the filter this connection was opened with (a bookmarked one, or
        // one a newer daemon no longer takes). Go on without it rather than retry it forever.
        if (this.filter && !this.heard) {
          const refused = this.filter;
          this.filter = "";
          this.lastId = 0;
          this.onReset();
          this.onFilterRefused(reason || "The daemon refused the filter.", refused);
          why = "Filter refused; showing all entries";
          immediate = true;
          break;
        }
        why = reason ? `Connection lost (${code} ${reason})` : `Connection lost (${code})`;
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
    if (!this.signedIn) return;
    const epoch = this.epoch;
    this.onState("connecting", "Reconnecting…");
    let token;
    try {
      token = await fetchToken();
    } catch (e) {
      if (epoch !== this.epoch) return;
      if (e.status === 401) {
        this.#sessionEnded();
        return;
      }
      if (e.status === 429 && e.retryAfterSecs !== null) {
        this.#schedule(e.retryAfterSecs * 1000, "Sign-ins from this address are throttled");
        return;
      }
      this.#schedule(backoffDelay(this.attempt++), e.message);
      return;
    }
    if (epoch !== this.epoch) return;
    this.#open(token);
  }

  /** The daemon no longer knows the session (sign-out elsewhere, expiry, user removed). */
  #sessionEnded() {
    this.signedIn = false;
    this.#teardown();
    const ws = this.socket;
    this.socket = null;
    if (ws) {
      ws.onclose = null;
      ws.close(1000, "signed out");
    }
    this.onState("signed-out", "");
    this.onSignedOut("Your session has ended. Please sign in again.");
  }

  #teardown() {
    clearInterval(this.pinger);
    this.pinger = null;
    clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * One search (CONTRACT §8): the entries with `fromMs ≤ ts < untilMs` that match `filter`, streamed
 * once and never resumed (the caller runs it again if it wants). Callbacks:
 * - onAccepted(): the daemon's first message (an entry, a `gap`, or the `pong` to the `ping` sent
 *   on open): it took the window and the filter;
 * - onEntry(entry, text): each entry in id order, with the JSON text as the daemon sent it;
 * - onGap(after, before): matching entries in the window are gone (retention; filtered only);
 * - onEnd(code, reason): the socket closed; 1000 means the log passed the window's end (done),
 *   anything else stopped it (1008: refused, the reason names the problem).
 */
export class Search {
  constructor({ fromMs, untilMs, filter = "", onAccepted, onEntry, onGap, onEnd }) {
    this.fromMs = fromMs;
    this.untilMs = untilMs;
    this.filter = filter;
    this.onAccepted = onAccepted;
    this.onEntry = onEntry;
    this.onGap = onGap;
    this.onEnd = onEnd;
    /** Closed by us or by the daemon: no callback after that. */
    this.closed = false;
    this.accepted = false;
    this.socket = null;
    this.pinger = null;
  }

  /** Mints a token and opens the stream; throws a TokenError (401: the session has ended). */
  async start() {
    const token = await fetchToken();
    if (this.closed) return;
    const url = new URL("api/ws/logs", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    // Epoch seconds with milliseconds: the daemon takes them as they are, whatever its time zone.
    let q = `token=${encodeURIComponent(token)}&from=${(this.fromMs / 1000).toFixed(3)}`
      + `&until=${(this.untilMs / 1000).toFixed(3)}`;
    if (this.filter) q += `&filter=${encodeURIComponent(this.filter)}`;
    url.search = q;
    url.hash = "";
    const ws = new WebSocket(url.href);
    this.socket = ws;
    ws.onopen = () => ws.send("ping");
    // An `until` still ahead keeps the stream open: the contract's keep-alive, as live streams do.
    this.pinger = setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send("ping"); }, PING_EVERY_MS);
    ws.onmessage = (ev) => this.#message(ev.data);
    ws.onclose = (ev) => {
      clearInterval(this.pinger);
      if (this.closed) return;
      this.closed = true;
      this.onEnd(ev.code, ev.reason);
    };
  }

  #message(data) {
    if (this.closed || typeof data !== "string") return;
    if (!this.accepted) {
      this.accepted = true;
      this.onAccepted();
    }
    if (data === "pong") return;
    let e;
    try { e = JSON.parse(data); } catch { return; }
    if (!e || typeof e !== "object") return;
    if (e.type === "gap" && typeof e.after === "number" && typeof e.before === "number") {
      this.onGap(e.after, e.before);
      return;
    }
    if (typeof e.id === "number") this.onEntry(e, data);
  }

  /** Stops it (a new search, back to live, sign-out); no callback follows. */
  close() {
    this.closed = true;
    clearInterval(this.pinger);
    const ws = this.socket;
    this.socket = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000, "search closed");
    }
  }
}
