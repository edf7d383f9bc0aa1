// Unit tests of the dashboard's pure functions (web/*.js are ES modules that import nothing from
// the browser at load time): status classes, hosts, quick-filter terms, CSV/NDJSON export, Retry-After,
// Basic credentials, the reconnection backoff, the header's counters (per node too, for a fleet
// central), and what the time ranges mean (range.js).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  statusClass, destinationHost, toCsv, toNdjson, formatBytes, FIELDS, quickTerm, addTerm, domainOf,
} from "../../web/entry.js";
import { backoffDelay, parseRetryAfter, basicAuth } from "../../web/stream.js";
import { Stats, RATE_WINDOW } from "../../web/stats.js";
import {
  resolveRange, customRange, rangeFromQuery, rangeToQuery, toLocalInput, fromLocalInput, clock, windowText,
  progressOf,
} from "../../web/range.js";

const entry = (over = {}) => ({
  id: 1, timestamp: "2026-03-25 14:32:10", client_ip: "192.168.1.10", method: "CONNECT",
  destination: "example.com:443", status: "200 Connection established", bytes: 4096,
  ts: 1774449130.123, elapsed_ms: 85, result: "TCP_TUNNEL", code: 200, user: null,
  hierarchy: "HIER_DIRECT", peer: "93.184.216.34", content_type: null, ...over,
});

describe("entry", () => {
  it("classes statuses, TCP_DENIED first", () => {
    assert.equal(statusClass(entry()), "2xx");
    assert.equal(statusClass(entry({ code: 304, status: "304 Not Modified" })), "3xx");
    assert.equal(statusClass(entry({ code: 404 })), "4xx");
    assert.equal(statusClass(entry({ code: 503 })), "5xx");
    assert.equal(statusClass(entry({ code: 403, result: "TCP_DENIED" })), "denied");
    assert.equal(statusClass(entry({ code: 0, status: "000" })), "other");
    assert.equal(statusClass(entry({ code: null, status: "302 Found" })), "3xx");
  });

  it("takes the host of a destination", () => {
    assert.equal(destinationHost("example.com:443"), "example.com:443");
    assert.equal(destinationHost("http://deb.debian.org/debian/x?y"), "deb.debian.org");
    assert.equal(destinationHost("https://user:pw@host.example:8443/p"), "host.example:8443");
    assert.equal(destinationHost("http://a.b?q"), "a.b");
    assert.equal(destinationHost(null), "");
  });

  it("formats bytes", () => {
    assert.equal(formatBytes(999), "999 B");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(5 * 1024 * 1024), "5.0 MiB");
    assert.equal(formatBytes(null), "—");
  });

  it("makes quick-filter terms the daemon's grammar reads (CONTRACT §6)", () => {
    assert.equal(quickTerm("client", entry()), "client:192.168.1.10");
    assert.equal(quickTerm("client", entry({ client_ip: "2001:db8::5" })), "client:2001:db8::5");
    assert.equal(quickTerm("client", entry({ client_ip: "c-7f3a9e" })), "c-7f3a9e", "a pseudonym is a bare word");
    assert.equal(quickTerm("client", entry({ client_ip: null })), null);
    assert.equal(quickTerm("domain", entry()), "domain:example.com", "no port");
    assert.equal(quickTerm("domain", entry({ destination: "http://u:p@WWW.Example.org:8080/x?y" })), "domain:www.example.org");
    assert.equal(domainOf("[2001:db8::1]:443"), "[2001:db8::1]");
    assert.equal(quickTerm("status", entry({ code: 404 })), "status:404");
    assert.equal(quickTerm("status", entry({ code: null })), null);
    assert.equal(quickTerm("user", entry({ user: "alice" })), "user:alice");
    assert.equal(quickTerm("user", entry({ user: "Jo Doe" })), 'user:"Jo Doe"', "quoted when it has a space");
    assert.equal(quickTerm("user", entry({ user: 'say "hi"' })), null, "no escape for a quote in the grammar");
    assert.equal(quickTerm("user", entry({ user: null })), "user:-");
  });

  it("adds a term once, keeping what was typed", () => {
    assert.equal(addTerm("", "status:404"), "status:404");
    assert.equal(addTerm("  method:GET ", "status:404"), "method:GET status:404");
    assert.equal(addTerm('user:"Jo  Doe" status:404', "status:404"), 'user:"Jo  Doe" status:404');
    assert.equal(addTerm('user:"Jo Doe"', "Doe"), 'user:"Jo Doe" Doe', "a word inside quotes is not a term");
  });

  it("exports NDJSON one object per line and CSV with escaping and defused formulas", () => {
    const a = entry({ id: 1 });
    const b = entry({ id: 2, destination: 'http://x/"a",b', user: "=cmd()", referer: "r" });
    const nd = toNdjson([a, b]).split("\n");
    assert.equal(nd.length, 3);
    assert.deepEqual(JSON.parse(nd[1]), b);
    const csv = toCsv([a, b]).split("\r\n");
    assert.equal(csv[0], [...FIELDS, "referer"].join(","));
    assert.ok(csv[2].includes('"http://x/""a"",b"'));
    assert.ok(csv[2].includes(",'=cmd(),"));
    assert.ok(csv[1].startsWith("1,2026-03-25 14:32:10,192.168.1.10,CONNECT,example.com:443,"));
    assert.equal(csv[3], "");
  });
});

describe("stream helpers", () => {
  it("reads Retry-After as seconds or as a date", () => {
    assert.equal(parseRetryAfter("120"), 120);
    const now = Date.parse("2026-01-01T00:00:00Z");
    assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now), 30);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter("soon"), null);
  });

  it("encodes Basic credentials as UTF-8", () => {
    assert.equal(basicAuth("admin", "secret"), "Basic YWRtaW46c2VjcmV0");
    const decoded = Buffer.from(basicAuth("jörg", "pässwörd").slice(6), "base64").toString("utf8");
    assert.equal(decoded, "jörg:pässwörd");
  });

  it("backs off exponentially, with jitter, under a cap", () => {
    assert.equal(backoffDelay(0, () => 0), 250);
    assert.equal(backoffDelay(0, () => 1), 500);
    assert.equal(backoffDelay(3, () => 0), 2000);
    assert.equal(backoffDelay(3, () => 1), 4000);
    for (const attempt of [7, 20, 1000]) {
      assert.equal(backoffDelay(attempt, () => 1), 30_000);
      assert.equal(backoffDelay(attempt, () => 0), 15_000);
    }
  });
});

describe("stats", () => {
  it("counts entries per second over a sliding minute", () => {
    const s = new Stats();
    const t0 = 1_800_000_000_000;
    for (let i = 0; i < 5; i++) s.add(entry(), t0);
    for (let i = 0; i < 3; i++) s.add(entry(), t0 + 1000);
    const series = s.series(t0 + 2000);
    assert.equal(series.length, RATE_WINDOW);
    assert.deepEqual(series.slice(-2), [5, 3]);
    assert.equal(s.currentRate(t0 + 2000), 3, "the last complete second");
    assert.ok(s.series(t0 + 120_000).every((v) => v === 0), "old seconds fall out");
    assert.equal(s.total, 8);
  });

  it("ranks destinations and clients over the last five minutes", () => {
    const s = new Stats();
    const t0 = 1_800_000_000_000;
    for (let i = 0; i < 3; i++) s.add(entry({ destination: "http://a.example/x", client_ip: "10.0.0.1" }), t0);
    s.add(entry({ destination: "b.example:443", client_ip: "10.0.0.2" }), t0 + 20_000);
    const top = s.top(5, t0 + 20_000);
    assert.deepEqual(top.dest, [["a.example", 3], ["b.example:443", 1]]);
    assert.deepEqual(top.client, [["10.0.0.1", 3], ["10.0.0.2", 1]]);
    assert.deepEqual(s.top(5, t0 + 20_000 + 301_000).dest, [], "older than five minutes");
    s.reset();
    assert.equal(s.total, 0);
    assert.deepEqual(s.top(5, t0).dest, []);
  });

  it("counts entries per node when a fleet central's entries carry one (CONTRACT §10)", () => {
    const s = new Stats();
    const t0 = 1_800_000_000_000;
    assert.deepEqual(s.top(5, t0).node, [], "no node list for a single proxy");
    s.add(entry(), t0);
    assert.deepEqual(s.top(5, t0).node, []);
    for (let i = 0; i < 2; i++) s.add(entry({ node: "edge-b", node_id: 7 + i }), t0);
    s.add(entry({ node: "edge-a", node_id: 3 }), t0 + 1000);
    assert.deepEqual(s.top(5, t0 + 1000).node, [["edge-b", 2], ["edge-a", 1]]);
    assert.deepEqual([...s.nodePerMinute(t0 + 1000)], [["edge-b", 2], ["edge-a", 0]], "complete seconds only");
    assert.deepEqual([...s.nodePerMinute(t0 + 2000)], [["edge-b", 2], ["edge-a", 1]], "the last minute, per node");
    assert.deepEqual([...s.nodePerMinute(t0 + 62_000)], [["edge-b", 0], ["edge-a", 0]], "a minute later");
    s.reset();
    assert.deepEqual([...s.nodePerMinute(t0 + 2000)], []);
    assert.equal(quickTerm("node", entry({ node: "edge-a" })), "node:edge-a");
    assert.equal(quickTerm("node", entry({ node: "edge 1" })), 'node:"edge 1"');
    assert.equal(quickTerm("node", entry()), null, "no node, no term");
  });
});

describe("time ranges", () => {
  // A fixed local instant: 2026-03-25 14:32:10.500 in the runner's time zone.
  const now = new Date(2026, 2, 25, 14, 32, 10, 500).getTime();

  it("resolves the relative ranges to windows that end when chosen", () => {
    assert.deepEqual(resolveRange("15m", now), { key: "15m", fromMs: now - 900_000, untilMs: now });
    assert.deepEqual(resolveRange("1h", now), { key: "1h", fromMs: now - 3_600_000, untilMs: now });
    assert.deepEqual(resolveRange("today", now), { key: "today", fromMs: new Date(2026, 2, 25).getTime(), untilMs: now });
    assert.equal(resolveRange("2h", now), null);
    assert.equal(customRange(now, now), null, "an empty window");
    assert.equal(customRange(NaN, now), null);
    assert.deepEqual(customRange(now - 1, now), { key: "custom", fromMs: now - 1, untilMs: now });
  });

  it("keeps a range in the page URL and reads it back", () => {
    const params = new URLSearchParams("filter=status%3A5xx&range=15m");
    rangeToQuery(params, resolveRange("1h", now));
    assert.equal(params.toString(), "filter=status%3A5xx&range=1h");
    assert.deepEqual(rangeFromQuery(params, now), resolveRange("1h", now), "re-resolved at `now`");
    const custom = customRange(Date.parse("2026-03-25T10:00:00Z"), Date.parse("2026-03-25T11:30:00Z"));
    rangeToQuery(params, custom);
    assert.equal(params.toString(), "filter=status%3A5xx&from=2026-03-25T10%3A00%3A00.000Z&until=2026-03-25T11%3A30%3A00.000Z");
    assert.deepEqual(rangeFromQuery(params, now), custom);
    rangeToQuery(params, null);
    assert.equal(params.toString(), "filter=status%3A5xx");
    assert.equal(rangeFromQuery(params, now), null, "live");
    assert.equal(rangeFromQuery(new URLSearchParams("range=forever"), now), null);
    assert.equal(rangeFromQuery(new URLSearchParams("from=2026-03-25T11:00:00Z&until=2026-03-25T10:00:00Z"), now), null);
    assert.equal(rangeFromQuery(new URLSearchParams("from=yesterday&until=2026-03-25T10:00:00Z"), now), null);
  });

  it("converts datetime-local values and formats windows and progress", () => {
    assert.equal(toLocalInput(now), "2026-03-25T14:32:10");
    assert.equal(fromLocalInput("2026-03-25T14:32:10"), now - 500);
    assert.equal(fromLocalInput("2026-03-25T14:32"), now - 10_500, "seconds are optional");
    assert.ok(Number.isNaN(fromLocalInput("")));
    assert.ok(Number.isNaN(fromLocalInput("25.03.2026 14:32")));
    assert.equal(clock(now, now), "14:32:10");
    assert.equal(clock(now - 86_400_000, now), "2026-03-24 14:32:10", "another day has its date");
    assert.equal(windowText(resolveRange("1h", now), now), "13:32:10–14:32:10");
    const r = resolveRange("1h", now);
    assert.equal(progressOf(r, now - 900_000), 0.75);
    assert.equal(progressOf(r, now - 7_200_000), 0);
    assert.equal(progressOf(r, now + 1), 1);
    assert.equal(progressOf(r, NaN), 0, "nothing yet");
  });
});
