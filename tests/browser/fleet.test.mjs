// The dashboard of a real fleet central (CONTRACT §10, issue 13) in chromium: a nats-server with
// JetStream, two edges (`--publish --node-name a|b`) tailing logs of their own, a central
// (`--consume --nodes a,b`). Lines appended to each edge's log show on the central's dashboard with
// the edge's name in the node column; the per-node top list counts each node; a click on a node
// cell filters the view to `node:<name>`, and only that node's entries arrive live from then on.
//
// Skipped (with the reason) only when nats-server is not installed; scripts/test.sh installs it.
// Run: cargo build && (cd tests/browser && npm ci) && node --test tests/browser/fleet.test.mjs
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  WAIT, NATS_SERVER, NatsServer, newDaemon, launch, recordCsp, signIn, lastIdIs, daemonReached, accessibilityProblems,
} from "./harness.mjs";

const NODES = ["a", "b"];

/** Line `n` of edge `node`'s log: its destination host names the edge, so a row tells whose it is. */
function edgeLine(node, n) {
  const ts = (Date.now() / 1000).toFixed(3);
  return `${ts}     ${n % 90 + 5} 192.168.1.${10 + (n % 5)} TCP_MISS/200 ${320 + n} GET http://${node}.fleet.test/${n} - HIER_DIRECT/93.184.216.34 text/html\n`;
}

const skip = NATS_SERVER ? false : "nats-server is not installed (apt-get install nats-server; scripts/test.sh installs it)";

describe("the dashboard of a fleet central", { timeout: 240_000, skip }, () => {
  let dir, nats, central, context, page, base;
  const edges = {};
  /** Lines appended to each edge's log so far. */
  const written = { a: 0, b: 0 };
  const pageErrors = [];

  function append(node, count) {
    let text = "";
    for (let i = 0; i < count; i++) text += edgeLine(node, ++written[node]);
    fs.appendFileSync(edges[node].log, text);
  }
  const total = () => written.a + written.b;

  /** The rows in the DOM as `{ node, host, nodeId }`: the node cell's text, the destination's host. */
  const rows = () => page.$$eval("#rows .row", (rs) => rs.map((r) => ({
    node: r.querySelector(".c-node").textContent,
    host: new URL(r.querySelector(".c-dest").textContent).host,
    nodeId: r.entry.node_id,
  })));

  /** The per-node list as shown: `[[name, count over 5 min, "<n>/min"], …]`. */
  const topNodes = () => page.$$eval("#top-node li", (lis) => lis
    .filter((li) => !li.classList.contains("none"))
    .map((li) => [li.querySelector(".name").textContent, Number(li.querySelector(".count").textContent.replace(/\D/g, "")),
      li.querySelector(".rate")?.textContent]));

  /** Waits (bounded) until the per-node list reads `want` (it is redrawn once a second). */
  async function topNodesAre(want) {
    await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll("#top-node li:not(.none)")].map((li) =>
      [li.querySelector(".name").textContent, Number(li.querySelector(".count").textContent.replace(/\D/g, "")),
        li.querySelector(".rate")?.textContent])) === JSON.stringify(w), want, { timeout: WAIT })
      .catch(async (e) => assert.deepEqual(await topNodes(), want, e.message));
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "proxytail-fleet-"));
    nats = new NatsServer(dir);
    await nats.start();
    for (const node of NODES) {
      fs.mkdirSync(path.join(dir, node));
      edges[node] = await newDaemon(path.join(dir, node));
      await edges[node].start(["--publish", nats.url, "--node-name", node]);
    }
    fs.mkdirSync(path.join(dir, "central"));
    central = await newDaemon(path.join(dir, "central"));
    central.source = ["--consume", nats.url, "--nodes", NODES.join(",")];
    await central.start();
    base = `http://127.0.0.1:${central.port}`;
    context = await launch(dir);
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await recordCsp(page);
    await page.goto(base + "/");
    await signIn(page);
  });

  after(async () => {
    await context?.close().catch(() => {});
    for (const d of [central, ...Object.values(edges)]) {
      if (d?.child) {
        const child = d.child;
        await d.stop().catch(() => child.kill("SIGKILL"));
      }
    }
    if (nats?.child) {
      const child = nats.child;
      await nats.stop().catch(() => child.kill("SIGKILL"));
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("shows each entry's edge in the node column and counts and rates each node in the per-node list", async () => {
    append("a", 12);
    append("b", 7);
    await daemonReached(base, total());
    await lastIdIs(page, total());
    assert.ok(await page.isVisible("[role=columnheader].c-node"), "the node column's header shows");
    const shown = await rows();
    assert.equal(shown.length, total());
    for (const r of shown) {
      assert.ok(NODES.includes(r.node), `node cell ${JSON.stringify(r.node)}`);
      assert.equal(r.host, `${r.node}.fleet.test`, "the node cell names the edge whose log had the line");
    }
    for (const node of NODES) {
      const ids = shown.filter((r) => r.node === node).map((r) => r.nodeId).sort((x, y) => x - y);
      assert.deepEqual(ids, Array.from({ length: written[node] }, (_, i) => i + 1), `node ${node}'s ids, each once`);
    }
    await page.waitForSelector("#top-node-box:not([hidden])", { timeout: WAIT });
    // All arrived within the last minute: the per-minute rate equals the count.
    await topNodesAre([["a", 12, "12/min"], ["b", 7, "7/min"]]);
  });

  it("filters to one node from a click on its cell; only its entries arrive live", async () => {
    await page.click('#rows .row .c-node button.q >> text="b"');
    await page.waitForFunction(() => new URL(location.href).searchParams.get("filter") === "node:b", null, { timeout: WAIT });
    assert.equal(await page.inputValue("#f-expr"), "node:b");
    // The daemon's backlog of matches refills the table: b's entries only.
    await page.waitForFunction((n) => document.querySelectorAll("#rows .row").length === n, written.b, { timeout: WAIT });
    append("a", 5);
    append("b", 4);
    await daemonReached(base, total());
    // One more of b's, made after all of a's: the stream is in id order, so once it is shown any
    // of a's that passed the filter would be shown too.
    append("b", 1);
    await daemonReached(base, total());
    await page.waitForFunction((n) => document.querySelectorAll("#rows .row").length === n, written.b, { timeout: WAIT });
    const shown = await rows();
    assert.ok(shown.every((r) => r.node === "b" && r.host === "b.fleet.test"), JSON.stringify(shown));
    assert.deepEqual(shown.map((r) => r.nodeId).sort((x, y) => x - y), Array.from({ length: written.b }, (_, i) => i + 1));
    // The counters count what the view shows since the filter changed: node b alone.
    await topNodesAre([["b", written.b, `${written.b}/min`]]);
  });

  it("meets WCAG 2.1 A/AA with the node column and list shown, and met no page error or CSP violation", async () => {
    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
  });
});
