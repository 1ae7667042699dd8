// The client against a real sidecar and a real Redis, both started here on loopback ports.
// The sidecar runs with MAC_DEFAULT_PLAN=enterprise and MAC_DEFAULT_LIMIT=3; every test uses
// its own workspace.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { Code, ConnectError, createClient } from "../index.js";
import { ADMIN_TOKEN, startRedis, startSidecar, within } from "./helpers/servers.js";

const T = { timeout: 10000 };
const KEY = /^[0-9a-f]{28}$/;

let redis;
let sidecar;
let client;
let admin;

before(async () => {
  redis = await startRedis();
  sidecar = await startSidecar(redis.url);
  client = createClient(sidecar.address);
  admin = createClient(sidecar.address, { token: ADMIN_TOKEN });
}, { timeout: 20000 });

after(async () => {
  client?.close();
  admin?.close();
  await sidecar?.stop();
  await redis?.stop();
});

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConnectError, `expected a ConnectError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to reject");
}

describe("Enforcer", () => {
  it("activate admits a new contact, then answers ALREADY_ACTIVE with the same key", T, async () => {
    const first = await client.activate("ws-activate", { email: "ana@example.com", channel: "livechat" });
    assert.equal(first.allowed, true);
    assert.equal(first.reason, "REASON_ADMITTED");
    assert.match(first.contactKey, KEY);
    assert.equal(first.fromClient, false);
    assert.equal(first.identityConflict, false);
    assert.equal(first.shadowDenied, false);
    assert.equal(first.visitorMerged, false);
    const u = first.usage;
    assert.match(u.period, /^\d{4}-\d{2}$/);
    assert.ok(u.periodStart instanceof Date && u.periodEnd instanceof Date);
    assert.ok(u.periodStart < u.periodEnd);
    assert.deepEqual(
      { active: u.active, limit: u.limit, remaining: u.remaining, plan: u.plan },
      { active: 1, limit: 3, remaining: 2, plan: "enterprise" },
    );
    assert.equal(u.trialEndsAt, undefined);

    const again = await client.activate("ws-activate", { email: " ANA@example.com " });
    assert.equal(again.allowed, true);
    assert.equal(again.reason, "REASON_ALREADY_ACTIVE");
    assert.equal(again.contactKey, first.contactKey);
    assert.equal(again.usage.active, 1);
  });

  it("the limit denies a new contact while active ones are still allowed", T, async () => {
    const ws = "ws-limit";
    for (const id of ["c1", "c2", "c3"]) {
      assert.equal((await client.activate(ws, { id })).reason, "REASON_ADMITTED");
    }
    const fourth = await client.activate(ws, { id: "c4" });
    assert.equal(fourth.allowed, false);
    assert.equal(fourth.reason, "REASON_LIMIT_REACHED");
    assert.deepEqual([fourth.usage.active, fourth.usage.limit, fourth.usage.remaining], [3, 3, 0]);
    const known = await client.activate(ws, { id: "c2" });
    assert.equal(known.allowed, true);
    assert.equal(known.reason, "REASON_ALREADY_ACTIVE");
    assert.equal((await client.check(ws, { id: "c5" })).reason, "REASON_LIMIT_REACHED");
  });

  it("check answers what activate would, and changes nothing", T, async () => {
    const ws = "ws-check";
    const contact = { phone: "+49 151 1234 5678" };
    for (let i = 0; i < 2; i++) {
      const d = await client.check(ws, contact);
      assert.equal(d.allowed, true);
      assert.equal(d.reason, "REASON_WITHIN_LIMIT");
      assert.equal(d.usage.active, 0);
    }
    assert.equal((await admin.getUsage(ws)).usage.active, 0);
    const admitted = await client.activate(ws, contact);
    assert.equal(admitted.reason, "REASON_ADMITTED");
    const checked = await client.check(ws, { phone: "+4915112345678" });
    assert.equal(checked.reason, "REASON_ALREADY_ACTIVE");
    assert.equal(checked.contactKey, admitted.contactKey);
    assert.equal(checked.usage.active, 1);
  });

  it("activateBatch decides in request order with one usage", T, async () => {
    const res = await client.activateBatch("ws-batch", [
      { email: "ana@example.com" },
      { id: "crm-2" },
      { email: "ANA@example.com" },
      { channel: "whatsapp", visitorId: "wa-17" },
      { id: "crm-5" },
    ]);
    assert.deepEqual(
      res.decisions.map((d) => [d.allowed, d.reason]),
      [
        [true, "REASON_ADMITTED"],
        [true, "REASON_ADMITTED"],
        [true, "REASON_ALREADY_ACTIVE"],
        [true, "REASON_ADMITTED"],
        [false, "REASON_LIMIT_REACHED"],
      ],
    );
    assert.equal(res.decisions[2].contactKey, res.decisions[0].contactKey);
    assert.equal(new Set(res.decisions.slice(0, 2).map((d) => d.contactKey)).size, 2);
    for (const d of res.decisions) {
      assert.equal(d.usage, undefined);
      assert.equal(d.fromClient, false);
    }
    assert.deepEqual([res.usage.active, res.usage.limit, res.usage.remaining], [3, 3, 0]);
  });

  it("INVALID_ARGUMENT reaches the caller with the field, whatever the policy", T, async () => {
    const lenient = createClient(sidecar.address, { onUnavailable: "allow" });
    try {
      const e1 = await rejection(lenient.activate("ws-invalid", { email: "not-an-email" }));
      assert.equal(e1.code, Code.InvalidArgument);
      assert.match(e1.rawMessage, /^contact\.email: /);
      assert.equal(e1.rawMessage, "contact.email: is not an email address");

      const e2 = await rejection(
        client.activateBatch("ws-invalid", [{ id: "ok-1" }, { email: "ana@example.com", phone: "12" }]),
      );
      assert.equal(e2.code, Code.InvalidArgument);
      assert.match(e2.rawMessage, /^contacts\[1\]\.phone: /);

      const e3 = await rejection(client.check("not a workspace!", { id: "x" }));
      assert.equal(e3.code, Code.InvalidArgument);
      assert.match(e3.rawMessage, /^workspace_id: /);

      assert.equal((await admin.getUsage("ws-invalid")).usage.active, 0);
    } finally {
      lenient.close();
    }
  });

  it("occurredAt decides in the period of the event; too far ahead or closed is refused", T, async () => {
    const ws = "ws-occurred";
    const now = Date.now();
    const recent = await client.activate(ws, { id: "e1" }, { occurredAt: new Date(now - 1000) });
    assert.equal(recent.reason, "REASON_ADMITTED");
    const checked = await client.check(ws, { id: "e1" }, { occurredAt: new Date(now) });
    assert.equal(checked.reason, "REASON_ALREADY_ACTIVE");
    const batch = await client.activateBatch(ws, [{ id: "e2" }], { occurredAt: new Date(now) });
    assert.equal(batch.usage.active, 2);
    const fits = await client.checkBatch(ws, [{ id: "e3" }], { occurredAt: new Date(now) });
    assert.equal(fits.admitted, 1);

    const ahead = await rejection(
      client.activate(ws, { id: "e4" }, { occurredAt: new Date(now + 3600_000) }),
    );
    assert.equal(ahead.code, Code.InvalidArgument);
    assert.match(ahead.rawMessage, /^occurred_at: /);
    const closed = await rejection(
      client.activate(ws, { id: "e4" }, { occurredAt: new Date(Date.UTC(2020, 0, 15)) }),
    );
    assert.equal(closed.code, Code.FailedPrecondition);
    assert.equal(closed.rawMessage, "occurred_at: period 2020-01 is closed");
    await assert.rejects(
      client.activate(ws, { id: "e4" }, { occurredAt: new Date(Number.NaN) }),
      /occurredAt: not a valid date/,
    );

    const answers = [];
    const calls = [
      { workspaceId: ws, contact: { id: "e1" }, occurredAt: new Date(now) },
      { workspaceId: ws, contact: { id: "e5" }, occurredAt: new Date(now + 3600_000) },
    ];
    for await (const answer of client.activateStream(calls)) answers.push(answer);
    assert.equal(answers[0].reason, "REASON_ALREADY_ACTIVE");
    assert.equal(answers[1].error.code, Code.InvalidArgument);
    assert.match(answers[1].error.message, /^occurred_at: /);
    assert.equal((await admin.getUsage(ws)).usage.active, 2);
  });

  it("a contact that is not an object is refused before any call", T, async () => {
    await assert.rejects(client.activate("ws-x", "ana@example.com"), TypeError);
    await assert.rejects(client.activate("ws-x", { email: 42 }), /contact\.email: expected a string/);
  });
});

describe("Admin", () => {
  it("without the token is UNAUTHENTICATED", T, async () => {
    for (const c of [client, createClient(sidecar.address, { token: "wrong" })]) {
      const e = await rejection(c.getSubscription("ws-admin"));
      assert.equal(e.code, Code.Unauthenticated);
      if (c !== client) c.close();
    }
    const e = await rejection(client.setSubscription({ workspaceId: "ws-admin", plan: "pro" }));
    assert.equal(e.code, Code.Unauthenticated);
  });

  it("with the token: setSubscription, getSubscription, getUsage", T, async () => {
    const ws = "ws-admin";
    const before = await admin.getSubscription(ws);
    assert.equal(before.isDefault, true);
    assert.equal(before.plan, "enterprise");
    assert.equal(before.effectiveLimit, 3);

    const set = await admin.setSubscription({
      workspaceId: ws,
      plan: "enterprise",
      customLimit: 5,
      packs: 1,
      timezone: "Europe/Berlin",
      platformVersion: "7.3.0",
    });
    assert.equal(set.workspaceId, ws);
    assert.equal(set.isDefault, false);
    assert.equal(set.customLimit, 5);
    assert.equal(set.packs, 1);
    assert.equal(set.effectiveLimit, 3005);
    assert.equal(set.timezone, "Europe/Berlin");
    assert.ok(set.updatedAt instanceof Date);

    const got = await admin.getSubscription(ws);
    assert.deepEqual(got, set);

    await client.activate(ws, { id: "u1" });
    const usage = await admin.getUsage(ws);
    assert.equal(usage.usage.active, 1);
    assert.equal(usage.usage.limit, 3005);
    assert.equal(usage.usage.remaining, 3004);
    assert.ok(Array.isArray(usage.history));

    const bad = await rejection(admin.setSubscription({ workspaceId: ws, plan: "pro", packs: 6 }));
    assert.equal(bad.code, Code.FailedPrecondition);
    assert.match(bad.rawMessage, /pro allows 0 to 5 MAC packs/);
  });

  it("setSubscription changes only the fields given, and clears those named", T, async () => {
    const ws = "ws-partial";
    await admin.setSubscription({
      workspaceId: ws,
      plan: "pro",
      timezone: "Europe/Berlin",
      shadowMode: true,
      thresholds: [50, 90],
    });
    const packs = await admin.setSubscription({ workspaceId: ws, packs: 3 });
    assert.equal(packs.packs, 3);
    assert.equal(packs.timezone, "Europe/Berlin");
    assert.equal(packs.shadowMode, true);
    assert.deepEqual(packs.thresholds, [50, 90]);
    assert.equal(packs.defaultThresholds, false);
    const cleared = await admin.setSubscription({
      workspaceId: ws,
      platformVersion: "8.0.0",
      clear: ["timezone", "thresholds"],
    });
    assert.equal(cleared.timezone, "UTC");
    assert.equal(cleared.platformVersion, "8.0.0");
    assert.equal(cleared.packs, 3);
    assert.equal(cleared.defaultThresholds, true);
    await assert.rejects(admin.setSubscription({ workspaceId: ws, clear: ["nope"] }), TypeError);
  });

  it("activateStream answers every call in order, a refused one with an error", T, async () => {
    const ws = "ws-stream";
    const answers = [];
    for await (const answer of client.activateStream([
      { workspaceId: ws, contact: { id: "s1" } },
      { workspaceId: ws, contact: { email: "nope" } },
      { workspaceId: ws, contact: { id: "s2" }, check: true, tag: 42 },
    ])) {
      answers.push(answer);
    }
    assert.deepEqual(
      answers.map((a) => a.tag),
      [0, 1, 42],
    );
    assert.equal(answers[0].reason, "REASON_ADMITTED");
    assert.equal(answers[1].error.code, 3); // INVALID_ARGUMENT
    assert.match(answers[1].error.message, /contact\.email/);
    assert.equal(answers[2].reason, "REASON_WITHIN_LIMIT");
  });

  it("checkBatch answers what activateBatch would do, and changes nothing", T, async () => {
    const ws = "ws-dry";
    await admin.setSubscription({ workspaceId: ws, plan: "enterprise", customLimit: 2 });
    await client.activate(ws, { id: "a" });
    const dry = await client.checkBatch(ws, [{ id: "a" }, { id: "b" }, { id: "c" }]);
    assert.deepEqual(
      dry.decisions.map((d) => d.reason),
      ["REASON_ALREADY_ACTIVE", "REASON_WITHIN_LIMIT", "REASON_LIMIT_REACHED"],
    );
    assert.deepEqual([dry.admitted, dry.alreadyActive, dry.denied, dry.fits], [1, 1, 1, false]);
    assert.equal(dry.usage.active, 1);
    assert.equal((await admin.getUsage(ws)).usage.active, 1);
  });

  it("carries the overage allowance and what it admits", T, async () => {
    const ws = "ws-overage";
    const sub = await admin.setSubscription({
      workspaceId: ws,
      plan: "enterprise",
      customLimit: 2,
      overagePercent: 50,
    });
    assert.equal(sub.overagePercent, 50);
    await client.activateBatch(ws, [{ id: "a" }, { id: "b" }]);
    const dry = await client.checkBatch(ws, [{ id: "c" }, { id: "d" }]);
    assert.deepEqual([dry.admitted, dry.overage, dry.denied], [0, 1, 1]);
    assert.deepEqual(
      dry.decisions.map((d) => d.overage),
      [true, false],
    );
    const over = await client.activate(ws, { id: "c" });
    assert.deepEqual([over.reason, over.overage], ["REASON_ADMITTED", true]);
    assert.deepEqual([over.usage.active, over.usage.overage], [3, 1]);
    assert.equal((await admin.getUsage(ws)).usage.overage, 1);
    const cleared = await admin.setSubscription({ workspaceId: ws, clear: ["overagePercent"] });
    assert.deepEqual([cleared.customLimit, cleared.overagePercent], [2, 0]);
  });

  it("setSubscription floodGuard, RATE_LIMITED and getUsage's last flood", T, async () => {
    const ws = "ws-flood";
    const sub = await admin.setSubscription({
      workspaceId: ws,
      plan: "pro",
      floodGuard: { newPerMinute: 1, action: "HOLD" },
    });
    assert.deepEqual(sub.floodGuard, { newPerMinute: 1, action: "HOLD" });
    assert.equal((await client.activate(ws, { id: "a" })).reason, "REASON_ADMITTED");
    const held = await client.activate(ws, { id: "b" });
    assert.deepEqual([held.allowed, held.reason], [false, "REASON_RATE_LIMITED"]);
    const report = await admin.getUsage(ws);
    assert.deepEqual(report.floodGuard, { newPerMinute: 1, action: "HOLD" });
    assert.ok(report.lastFloodAt instanceof Date);
    const flag = await admin.setSubscription({
      workspaceId: ws,
      floodGuard: { newPerMinute: 500, action: "flag" },
    });
    assert.deepEqual(flag.floodGuard, { newPerMinute: 500, action: "FLAG" });
    const cleared = await admin.setSubscription({ workspaceId: ws, clear: ["floodGuard"] });
    assert.equal(cleared.floodGuard, undefined);
    await assert.rejects(
      admin.setSubscription({ workspaceId: ws, floodGuard: { newPerMinute: 5, action: "DROP" } }),
      TypeError,
    );
  });

  it("listActiveContacts, merge and setExempt", T, async () => {
    const ws = "ws-identities";
    const a = await client.activate(ws, { email: "ana@example.com" });
    const b = await client.activate(ws, { phone: "+5511987654321" });
    const page = await admin.listActiveContacts(ws, { pageSize: 10 });
    assert.deepEqual([...page.contactKeys].sort(), [a.contactKey, b.contactKey].sort());
    assert.equal(page.total, 2);
    assert.equal(page.nextPageToken, "");

    const merged = await admin.merge(ws, [{ phone: "+5511987654321" }], { email: "ana@example.com" });
    assert.equal(merged.contactKey, a.contactKey);
    assert.equal(merged.folded, 1);
    assert.equal(merged.uncounted, 1);
    assert.equal(merged.usage.active, 1);
    assert.equal((await client.check(ws, { phone: "+55 11 98765-4321" })).contactKey, a.contactKey);

    const exempt = await admin.setExempt(ws, [{ id: "bot-1" }]);
    assert.equal(exempt.contactKeys.length, 1);
    const bot = await client.activate(ws, { id: "bot-1" });
    assert.equal(bot.reason, "REASON_EXEMPT");
    assert.equal(bot.allowed, true);
    assert.equal(bot.usage.active, 1);
    await admin.setExempt(ws, [{ id: "bot-1" }], false);
    assert.equal((await client.activate(ws, { id: "bot-1" })).reason, "REASON_ADMITTED");
  });

  it("forget erases a person once; the count stays", T, async () => {
    const ws = "ws-forget";
    await client.activate(ws, { id: "ana", email: "ana@example.com" });
    const first = await admin.forget(ws, { email: "ana@example.com" });
    assert.deepEqual(first, { forgotten: true, identifiersRemoved: 2, periods: 1 });
    const second = await admin.forget(ws, { id: "ana" });
    assert.deepEqual(second, { forgotten: false, identifiersRemoved: 0, periods: 0 });
    const again = await client.activate(ws, { id: "ana" });
    assert.deepEqual([again.reason, again.usage.active], ["REASON_ADMITTED", 2]);
  });

  it("listStatements pages a closed month and refuses an open or malformed one", T, async () => {
    const page = await admin.listStatements("2020-01", { pageSize: 10 });
    assert.deepEqual(page.statements, []);
    assert.equal(page.nextPageToken, "");
    await assert.rejects(admin.listStatements("2999-01"), (err) => {
      assert.equal(err.code, Code.FailedPrecondition);
      assert.match(err.rawMessage, /period 2999-01 is not closed yet/);
      return true;
    });
    await assert.rejects(admin.listStatements("2020-13"), (err) => {
      assert.equal(err.code, Code.InvalidArgument);
      assert.match(err.rawMessage, /^period: /);
      return true;
    });
  });

  it("listAuditRecords pages the changes made, newest first, with each field before and after", T, async () => {
    const ws = "ws-audit";
    const since = new Date(Date.now() - 60_000);
    await admin.setSubscription({ workspaceId: ws, plan: "pro", packs: 1 });
    await admin.setSubscription({ workspaceId: ws, packs: 2 });
    await admin.setSubscription({ workspaceId: ws, packs: 2 });
    const first = await admin.listAuditRecords(ws, { pageSize: 2, since });
    assert.equal(first.records.length, 2);
    const [again, change] = first.records;
    assert.equal(again.changed, false);
    assert.deepEqual(again.changes, []);
    assert.equal(change.method, "SetSubscription");
    assert.equal(change.admin, "admin");
    assert.equal(change.workspaceId, ws);
    assert.ok(change.at instanceof Date);
    assert.deepEqual(change.changes, [{ field: "packs", before: "1", after: "2" }]);
    assert.notEqual(first.nextPageToken, "");
    const rest = await admin.listAuditRecords(ws, { pageSize: 2, pageToken: first.nextPageToken });
    assert.equal(rest.records.length, 1);
    assert.ok(rest.records[0].changes.some((c) => c.field === "plan" && c.after === "pro"));
    assert.equal(rest.nextPageToken, "");
    const bad = await rejection(admin.listAuditRecords(ws, { pageSize: 1001 }));
    assert.equal(bad.code, Code.InvalidArgument);
    assert.match(bad.rawMessage, /^page_size: /);
    await assert.rejects(admin.listAuditRecords(ws, { since: "not a date" }), TypeError);
  });

  it("watchEvents delivers threshold and limit events, and stops when the caller breaks", T, async () => {
    const ws = "ws-events";
    const events = admin.watchEvents(ws);
    const seen = [];
    const reading = within(5000, (async () => {
      for await (const ev of events) {
        seen.push(ev);
        if (ev.type === "TYPE_LIMIT_REACHED") break;
      }
    })(), "waiting for TYPE_LIMIT_REACHED");
    for (const id of ["e1", "e2", "e3", "e4"]) await client.activate(ws, { id });
    await reading;

    assert.deepEqual(
      seen.map((e) => [e.type, e.thresholdPercent]),
      [
        ["TYPE_THRESHOLD_CROSSED", 80],
        ["TYPE_THRESHOLD_CROSSED", 100],
        ["TYPE_LIMIT_REACHED", 0],
      ],
    );
    for (const e of seen) {
      assert.equal(e.workspaceId, ws);
      assert.equal(e.limit, 3);
      assert.equal(e.active, 3);
      assert.match(e.period, /^\d{4}-\d{2}$/);
      assert.ok(e.at instanceof Date && !Number.isNaN(e.at.getTime()));
      assert.ok(e.id);
    }
    // The loop's break ended the iterator.
    assert.deepEqual(await events.next(), { done: true, value: undefined });

    // Resuming after the last id waits for new events; return() ends the wait at once.
    const resumed = admin.watchEvents(ws, seen.at(-1).id);
    const pending = resumed.next();
    await new Promise((r) => setTimeout(r, 200));
    await resumed.return();
    assert.deepEqual(await within(1000, pending, "return()"), { done: true, value: undefined });

    // So does aborting a signal.
    const controller = new AbortController();
    const watched = admin.watchEvents("", "", { signal: controller.signal });
    const all = [];
    const loop = (async () => {
      for await (const ev of watched) all.push(ev);
    })();
    await new Promise((r) => setTimeout(r, 300));
    controller.abort();
    await within(1000, loop, "abort()");
    assert.ok(all.some((e) => e.workspaceId === ws), "every-workspace stream replays ws-events");
  });

  it("watchEvents without the token rejects with UNAUTHENTICATED", T, async () => {
    const e = await rejection(within(3000, client.watchEvents("ws-events").next()));
    assert.equal(e.code, Code.Unauthenticated);
  });
});

describe("TLS", () => {
  // A TLS terminator (mutual TLS, ALPN h2) in front of the sidecar's plaintext port.
  let dir;
  let proxy;
  let address;
  const pem = {};
  const sockets = new Set();

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "mac-client-tls-"));
    const ssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    const key = (name) => ssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`);
    key("ca");
    ssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=mac test CA", "-days", "1", "-out", "ca.pem");
    for (const [name, san] of [["server", "DNS:sidecar.test"], ["client", "DNS:client.test"]]) {
      key(name);
      ssl("req", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-out", `${name}.csr`);
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
      ssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-extfile", `${name}.ext`, "-out", `${name}.pem`);
    }
    for (const f of ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"]) {
      pem[f] = readFileSync(path.join(dir, f));
    }
  });

  before(async () => {
    const [host, port] = [sidecar.address.slice(0, sidecar.address.lastIndexOf(":")),
      Number(sidecar.address.slice(sidecar.address.lastIndexOf(":") + 1))];
    proxy = tls.createServer(
      {
        key: pem["server.key"],
        cert: pem["server.pem"],
        ca: pem["ca.pem"],
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ["h2"],
      },
      (socket) => {
        const upstream = net.connect(port, host);
        for (const s of [socket, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => {
            socket.destroy();
            upstream.destroy();
          });
        }
        socket.pipe(upstream).pipe(socket);
      },
    );
    proxy.on("tlsClientError", () => {});
    proxy.listen(0, "127.0.0.1");
    await once(proxy, "listening");
    address = `127.0.0.1:${proxy.address().port}`;
  });

  after(() => {
    sockets.forEach((s) => s.destroy());
    proxy?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("speaks https with a CA, a client certificate and a server name", T, async () => {
    const secure = createClient(address, {
      tls: {
        ca: pem["ca.pem"].toString(), // PEM strings and buffers both work
        cert: pem["client.pem"],
        key: pem["client.key"],
        serverName: "sidecar.test",
      },
      token: ADMIN_TOKEN,
    });
    try {
      const d = await secure.activate("ws-tls", { id: "tls-1" });
      assert.equal(d.reason, "REASON_ADMITTED");
      assert.equal((await secure.getUsage("ws-tls")).usage.active, 1);
    } finally {
      secure.close();
    }
  });

  it("refuses a server its CA did not sign, or a wrong server name", T, async () => {
    for (const [options, message] of [
      [{ cert: pem["client.pem"], key: pem["client.key"], serverName: "sidecar.test" }, /certificate/],
      [{ ca: pem["ca.pem"], cert: pem["client.pem"], key: pem["client.key"], serverName: "other.test" }, /other\.test/],
    ]) {
      // Not UNAVAILABLE: a TLS misconfiguration is neither retried nor covered by onUnavailable.
      const c = createClient(address, { tls: options, onUnavailable: "allow" });
      try {
        const e = await rejection(c.check("ws-tls", { id: "tls-1" }));
        assert.notEqual(e.code, Code.Unavailable);
        assert.match(e.rawMessage, message);
      } finally {
        c.close();
      }
    }
  });
});

describe("the client object", () => {
  it("rejects calls after close()", T, async () => {
    const c = createClient(sidecar.address);
    assert.equal((await c.check("ws-close", { id: "x" })).allowed, true);
    c.close();
    const e = await rejection(c.check("ws-close", { id: "x" }));
    assert.equal(e.code, Code.Canceled);
    c.close(); // twice is fine
  });

  it("refuses a malformed address or options", () => {
    assert.throws(() => createClient("http://127.0.0.1:50051"), TypeError);
    assert.throws(() => createClient("127.0.0.1"), TypeError);
    assert.throws(() => createClient("127.0.0.1:50051", { onUnavailable: "maybe" }), TypeError);
    assert.throws(() => createClient("127.0.0.1:50051", { retries: -1 }), TypeError);
    assert.throws(() => createClient("127.0.0.1:50051", { deadlineMs: 0 }), TypeError);
    createClient("[::1]:50051").close();
    createClient("localhost:50051").close();
  });
});
