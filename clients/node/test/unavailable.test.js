// Retries, deadlines and the onUnavailable policy: against a loopback port nothing listens on,
// a port that accepts and never answers, and a real sidecar whose Redis is down.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "../index.js";
import { backoffMs, BACKOFF_CAP_MS } from "../lib/retry.js";
import { ADMIN_TOKEN, freePort, startSidecar } from "./helpers/servers.js";

const DEADLINE_MS = 400;
const SLACK_MS = 200;
const T = { timeout: 10000 };

const FALLBACK = {
  reason: "REASON_BACKEND_UNAVAILABLE",
  contactKey: "",
  identityConflict: false,
  shadowDenied: false,
  visitorMerged: false,
  fromLocalRecord: false,
  overage: false,
  usage: undefined,
  fromClient: true,
};

async function timed(fn) {
  const start = performance.now();
  try {
    return { value: await fn(), ms: performance.now() - start };
  } catch (error) {
    return { error, ms: performance.now() - start };
  }
}

describe("nothing listens on the port", () => {
  let address;
  const clients = [];
  const client = (options) => {
    const c = createClient(address, { deadlineMs: DEADLINE_MS, ...options });
    clients.push(c);
    return c;
  };

  before(async () => {
    address = `127.0.0.1:${await freePort()}`;
  });
  after(() => clients.forEach((c) => c.close()));

  it('onUnavailable "allow" answers an allowed REASON_BACKEND_UNAVAILABLE decision', T, async () => {
    const c = client({ onUnavailable: "allow" });
    for (const call of [
      () => c.activate("ws-down", { email: "ana@example.com" }),
      () => c.check("ws-down", { email: "ana@example.com" }),
    ]) {
      const { value, error, ms } = await timed(call);
      assert.equal(error, undefined);
      assert.deepEqual(value, { allowed: true, ...FALLBACK });
      assert.ok(ms < DEADLINE_MS + SLACK_MS, `took ${ms} ms`);
    }
  });

  it('onUnavailable "deny" answers a denied REASON_BACKEND_UNAVAILABLE decision', T, async () => {
    const c = client({ onUnavailable: "deny" });
    const { value, ms } = await timed(() => c.activate("ws-down", { id: "crm-1" }));
    assert.deepEqual(value, { allowed: false, ...FALLBACK });
    assert.ok(ms < DEADLINE_MS + SLACK_MS, `took ${ms} ms`);
  });

  it("activateBatch falls back with one decision per contact", T, async () => {
    const c = client({ onUnavailable: "deny" });
    const { value, ms } = await timed(() =>
      c.activateBatch("ws-down", [{ id: "a" }, { email: "b@example.com" }, { phone: "+4915112345678" }]),
    );
    assert.equal(value.decisions.length, 3);
    for (const d of value.decisions) assert.deepEqual(d, { allowed: false, ...FALLBACK });
    assert.equal(value.usage, undefined);
    assert.ok(ms < DEADLINE_MS + SLACK_MS, `took ${ms} ms`);
  });

  it('onUnavailable "throw" (the default) rejects with Code.Unavailable', T, async () => {
    const c = client({});
    const { error, ms } = await timed(() => c.activate("ws-down", { id: "crm-1" }));
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, Code.Unavailable);
    assert.ok(ms < DEADLINE_MS + SLACK_MS, `took ${ms} ms`);
  });

  it("Admin calls always throw, whatever the policy", T, async () => {
    const c = client({ onUnavailable: "allow", token: ADMIN_TOKEN });
    const { error, ms } = await timed(() => c.getUsage("ws-down"));
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.Unavailable);
    assert.ok(ms < DEADLINE_MS + SLACK_MS, `took ${ms} ms`);
  });

  it("many retries still end within the deadline", T, async () => {
    const c = client({ retries: 1000, deadlineMs: 300 });
    const { error, ms } = await timed(() => c.check("ws-down", { id: "x" }));
    assert.equal(error?.code, Code.Unavailable);
    assert.ok(ms < 300 + SLACK_MS, `took ${ms} ms`);
  });
});

describe("a port that accepts and never answers", () => {
  let server;
  let address;
  const sockets = new Set();
  before(async () => {
    server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    address = `127.0.0.1:${server.address().port}`;
  });
  after(async () => {
    sockets.forEach((s) => s.destroy());
    server.close();
  });

  it("the deadline bounds the call; the policy answers for a sidecar that is out of reach", T, async () => {
    const throwing = createClient(address, { deadlineMs: 300 });
    const allowing = createClient(address, { deadlineMs: 300, onUnavailable: "allow" });
    try {
      const thrown = await timed(() => throwing.activate("ws-hang", { id: "x" }));
      assert.equal(thrown.error?.code, Code.DeadlineExceeded);
      assert.ok(thrown.ms >= 250 && thrown.ms < 300 + SLACK_MS, `took ${thrown.ms} ms`);
      const allowed = await timed(() => allowing.activate("ws-hang", { id: "x" }));
      assert.deepEqual(allowed.value, { allowed: true, ...FALLBACK });
      assert.ok(allowed.ms < 300 + SLACK_MS, `took ${allowed.ms} ms`);
    } finally {
      throwing.close();
      allowing.close();
    }
  });
});

describe("a real sidecar whose Redis is down", () => {
  let sidecar;
  before(async () => {
    sidecar = await startSidecar(`redis://127.0.0.1:${await freePort()}/0`);
  });
  after(async () => {
    await sidecar?.stop();
  });

  const failures = (workspace) =>
    sidecar.logs
      .join("")
      .split("\n")
      .filter((line) => line.includes('"rpc failed"') && line.includes(`"${workspace}"`)).length;

  it("UNAVAILABLE is retried `retries` more times, then the policy answers", T, async () => {
    const c = createClient(sidecar.address, { retries: 2, deadlineMs: 1000, onUnavailable: "deny" });
    try {
      const { value, ms } = await timed(() => c.activate("ws-redis-down", { email: "ana@example.com" }));
      assert.deepEqual(value, { allowed: false, ...FALLBACK });
      assert.ok(ms < 1000 + SLACK_MS, `took ${ms} ms`);
      // The sidecar logs one "rpc failed" line per attempt: 1 + 2 retries.
      for (let i = 0; i < 20 && failures("ws-redis-down") < 3; i++) await sleep(50);
      await sleep(100);
      assert.equal(failures("ws-redis-down"), 3);
    } finally {
      c.close();
    }
  });

  it("retries: 0 makes one attempt and rethrows the sidecar's status", T, async () => {
    const c = createClient(sidecar.address, { retries: 0 });
    try {
      const { error } = await timed(() => c.check("ws-no-retry", { id: "x" }));
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.Unavailable);
      assert.match(error.rawMessage, /unavailable/i);
      for (let i = 0; i < 20 && failures("ws-no-retry") < 1; i++) await sleep(50);
      await sleep(150);
      assert.equal(failures("ws-no-retry"), 1);
    } finally {
      c.close();
    }
  });
});

describe("backoff", () => {
  it("is full jitter over 25 ms doubling, capped at 1 s", () => {
    assert.equal(backoffMs(0, () => 0), 0);
    assert.equal(backoffMs(0, () => 0.999999) < 25, true);
    assert.equal(backoffMs(1, () => 0.5), 25);
    assert.equal(backoffMs(3, () => 0.5), 100);
    assert.equal(backoffMs(10, () => 1), BACKOFF_CAP_MS);
    assert.equal(backoffMs(60, () => 1), BACKOFF_CAP_MS);
  });
});
