// @mac-sidecar/client: a Node client for the MAC sidecar's gRPC API (mac.v1.Enforcer and
// mac.v1.Admin), on connect-es over HTTP/2.
import { Code, ConnectError, createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Enforcer } from "./gen/mac/v1/enforcer_pb.js";
import { Admin } from "./gen/mac/v1/admin_pb.js";
import {
  auditRecordsPageObject,
  auditRecordsRequest,
  contactMessage,
  contactMessages,
  decisionObject,
  eventObject,
  fallbackDecision,
  listResponseObject,
  mergeResponseObject,
  statementsPageObject,
  subscriptionObject,
  subscriptionRequest,
  usageObject,
  usageResponseObject,
  withOccurredAt,
} from "./lib/convert.js";
import { withRetries } from "./lib/retry.js";

export { Code, ConnectError };

const POLICIES = new Set(["throw", "allow", "deny"]);
const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]@?#]+):(\d{1,5})$/;

function parseAddress(address) {
  const match = typeof address === "string" ? ADDRESS.exec(address) : null;
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new TypeError(`address: expected "host:port" like "127.0.0.1:50051" (got ${JSON.stringify(address)})`);
  }
  return address;
}

function checkOptions(options) {
  const {
    deadlineMs = 1000,
    token = "",
    tls = undefined,
    retries = 2,
    onUnavailable = "throw",
  } = options ?? {};
  if (!(typeof deadlineMs === "number" && deadlineMs > 0 && Number.isFinite(deadlineMs))) {
    throw new TypeError(`deadlineMs: expected a positive number of milliseconds (got ${deadlineMs})`);
  }
  if (!(Number.isInteger(retries) && retries >= 0)) {
    throw new TypeError(`retries: expected a non-negative integer (got ${retries})`);
  }
  if (!POLICIES.has(onUnavailable)) {
    throw new TypeError(`onUnavailable: expected "throw", "allow" or "deny" (got ${JSON.stringify(onUnavailable)})`);
  }
  if (typeof token !== "string") throw new TypeError("token: expected a string");
  if (tls !== undefined && tls !== true && (tls === null || typeof tls !== "object")) {
    throw new TypeError("tls: expected { ca?, cert?, key?, serverName? }");
  }
  return { deadlineMs, token, tls, retries, onUnavailable };
}

/** node:http2 / node:tls options from `{ ca, cert, key, serverName }`. */
function tlsOptions(tls) {
  const out = {};
  if (tls === true) return out;
  if (tls.ca !== undefined) out.ca = tls.ca;
  if (tls.cert !== undefined) out.cert = tls.cert;
  if (tls.key !== undefined) out.key = tls.key;
  if (tls.serverName !== undefined) out.servername = tls.serverName;
  return out;
}

/** Whether the sidecar could not answer: unreachable, UNAVAILABLE, or out of time. */
function isUnavailable(error) {
  return error.code === Code.Unavailable || error.code === Code.DeadlineExceeded;
}

/**
 * Creates a client of the sidecar at `address` ("host:port").
 *
 * @param {string} address
 * @param {import("./index.js").ClientOptions} [options]
 * @returns {import("./index.js").MacClient}
 */
export function createClient(address, options = {}) {
  parseAddress(address);
  const { deadlineMs, token, tls, retries, onUnavailable } = checkOptions(options);
  const baseUrl = `${tls ? "https" : "http"}://${address}`;
  const sessionManager = new Http2SessionManager(baseUrl, {}, tls ? tlsOptions(tls) : {});
  const transport = createGrpcTransport({ baseUrl, sessionManager });
  const enforcer = createConnectClient(Enforcer, transport);
  const admin = createConnectClient(Admin, transport);
  const adminHeaders = token ? { authorization: `Bearer ${token}` } : {};
  const watchers = new Set();
  let closed = false;

  function ensureOpen() {
    if (closed) throw new ConnectError("the client is closed", Code.Canceled);
  }

  function unary(call) {
    ensureOpen();
    return withRetries(call, { deadlineMs, retries });
  }

  /** An Enforcer call, with the onUnavailable policy applied to its failure. */
  async function decide(call, fallback) {
    try {
      return await unary(call);
    } catch (err) {
      const error = ConnectError.from(err);
      if (onUnavailable !== "throw" && !closed && isUnavailable(error)) {
        return fallback(onUnavailable === "allow");
      }
      throw error;
    }
  }

  function adminCall(method, request) {
    return unary((timeoutMs) => admin[method](request, { timeoutMs, headers: adminHeaders }));
  }

  return {
    async check(workspaceId, contact, { occurredAt } = {}) {
      const request = withOccurredAt({ workspaceId, contact: contactMessage(contact) }, occurredAt);
      return decide(
        async (timeoutMs) => decisionObject(await enforcer.check(request, { timeoutMs })),
        fallbackDecision,
      );
    },

    async activate(workspaceId, contact, { occurredAt } = {}) {
      const request = withOccurredAt({ workspaceId, contact: contactMessage(contact) }, occurredAt);
      return decide(
        async (timeoutMs) => decisionObject(await enforcer.activate(request, { timeoutMs })),
        fallbackDecision,
      );
    },

    async activateBatch(workspaceId, contacts, { occurredAt } = {}) {
      const request = withOccurredAt(
        { workspaceId, contacts: contactMessages(contacts, "contacts") },
        occurredAt,
      );
      return decide(
        async (timeoutMs) => {
          const res = await enforcer.activateBatch(request, { timeoutMs });
          return { decisions: res.decisions.map(decisionObject), usage: usageObject(res.usage) };
        },
        (allowed) => ({
          decisions: request.contacts.map(() => fallbackDecision(allowed)),
          usage: undefined,
        }),
      );
    },

    async checkBatch(workspaceId, contacts, { occurredAt } = {}) {
      const request = withOccurredAt(
        { workspaceId, contacts: contactMessages(contacts, "contacts") },
        occurredAt,
      );
      const res = await unary((timeoutMs) => enforcer.checkBatch(request, { timeoutMs }));
      return {
        decisions: res.decisions.map(decisionObject),
        admitted: res.admitted,
        overage: res.overage,
        alreadyActive: res.alreadyActive,
        uncounted: res.uncounted,
        denied: res.denied,
        fits: res.fits,
        usage: usageObject(res.usage),
      };
    },

    async setSubscription(request) {
      return subscriptionObject(await adminCall("setSubscription", subscriptionRequest(request)));
    },

    async getSubscription(workspaceId) {
      return subscriptionObject(await adminCall("getSubscription", { workspaceId }));
    },

    async getUsage(workspaceId, period = "") {
      return usageResponseObject(await adminCall("getUsage", { workspaceId, period }));
    },

    async listActiveContacts(workspaceId, { period = "", pageToken = "", pageSize = 0 } = {}) {
      const res = await adminCall("listActiveContacts", { workspaceId, period, pageToken, pageSize });
      return listResponseObject(res);
    },

    async listStatements(period, { pageToken = "", pageSize = 0 } = {}) {
      return statementsPageObject(await adminCall("listStatements", { period, pageToken, pageSize }));
    },

    async listAuditRecords(workspaceId, options = {}) {
      const res = await adminCall("listAuditRecords", auditRecordsRequest(workspaceId, options));
      return auditRecordsPageObject(res);
    },

    async merge(workspaceId, sources, target) {
      const request = {
        workspaceId,
        sources: contactMessages(sources, "sources"),
        target: contactMessage(target, "target"),
      };
      return mergeResponseObject(await adminCall("merge", request));
    },

    async setExempt(workspaceId, contacts, exempt = true) {
      const request = { workspaceId, contacts: contactMessages(contacts, "contacts"), exempt };
      const res = await adminCall("setExempt", request);
      return { contactKeys: [...res.contactKeys] };
    },

    async forget(workspaceId, contact) {
      const request = { workspaceId, contact: contactMessage(contact, "contact") };
      const res = await adminCall("forget", request);
      return {
        forgotten: res.forgotten,
        identifiersRemoved: res.identifiersRemoved,
        periods: res.periods,
      };
    },

    async *activateStream(calls, { signal } = {}) {
      ensureOpen();
      const controller = new AbortController();
      const stop = () => controller.abort();
      watchers.add(stop);
      signal?.addEventListener("abort", stop, { once: true });
      async function* messages() {
        let next = 0;
        for await (const call of calls) {
          const value = withOccurredAt(
            {
              workspaceId: call.workspaceId ?? "",
              contact: contactMessage(call.contact, "contact"),
            },
            call.occurredAt,
          );
          const tag = BigInt(call.tag ?? next);
          next += 1;
          yield { call: { case: call.check ? "check" : "activate", value }, tag };
        }
      }
      try {
        for await (const res of enforcer.activateStream(messages(), { signal: controller.signal })) {
          const tag = Number(res.tag);
          if (res.result.case === "decision") {
            yield { ...decisionObject(res.result.value), tag };
          } else {
            yield { error: { code: res.result.value?.code, message: res.result.value?.message }, tag };
          }
        }
      } catch (err) {
        if (!controller.signal.aborted) throw ConnectError.from(err);
      } finally {
        watchers.delete(stop);
        signal?.removeEventListener("abort", stop);
        controller.abort();
      }
    },

    watchEvents(workspaceId = "", afterId = "", { signal } = {}) {
      ensureOpen();
      return watch(workspaceId, afterId, signal);
    },

    close() {
      if (closed) return;
      closed = true;
      for (const stop of [...watchers]) stop();
      sessionManager.abort();
    },
  };

  /**
   * The event stream as an async iterator that ends (done) when the caller breaks out, calls
   * return(), aborts `signal`, or closes the client, even while it waits for the next event.
   * Other failures reject next() with a ConnectError; resume with the last event's id.
   */
  function watch(workspaceId, afterId, signal) {
    const controller = new AbortController();
    let stream;
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      watchers.delete(stop);
      signal?.removeEventListener("abort", stop);
      controller.abort();
    };
    watchers.add(stop);
    if (signal?.aborted) stop();
    else signal?.addEventListener("abort", stop, { once: true });

    const iterator = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next() {
        if (stopped) return { done: true, value: undefined };
        stream ??= admin
          .watchEvents({ workspaceId, afterId }, { signal: controller.signal, headers: adminHeaders })
          [Symbol.asyncIterator]();
        try {
          const result = await stream.next();
          if (result.done) {
            stop();
            return { done: true, value: undefined };
          }
          return { done: false, value: eventObject(result.value) };
        } catch (err) {
          if (stopped) return { done: true, value: undefined };
          stop();
          throw ConnectError.from(err);
        }
      },
      async return() {
        stop();
        return { done: true, value: undefined };
      },
      async throw(err) {
        stop();
        throw err;
      },
    };
    return iterator;
  }
}
