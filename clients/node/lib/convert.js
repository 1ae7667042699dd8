// Conversions between the generated protobuf-es messages and the plain objects of this API:
// int64 -> number, Timestamp -> Date, enums -> their proto value names.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ContactSchema, ReasonSchema } from "../gen/mac/v1/enforcer_pb.js";
import {
  Event_TypeSchema,
  FloodGuard_ActionSchema,
  SetSubscriptionRequestSchema,
} from "../gen/mac/v1/admin_pb.js";

const CONTACT_FIELDS = ["id", "email", "phone", "channel", "visitorId"];

/** The proto name of an enum value ("REASON_ADMITTED"), or its number for an unknown one. */
function enumName(schema, number) {
  const value = schema.value[number];
  return value ? value.name : String(number);
}

function toDate(ts) {
  return ts ? timestampDate(ts) : undefined;
}

function toNumber(value) {
  return typeof value === "bigint" ? Number(value) : value;
}

function toTimestamp(date, field) {
  if (date === undefined || date === null) return undefined;
  const d = date instanceof Date ? date : new Date(date);
  if (Number.isNaN(d.getTime())) throw new TypeError(`${field}: not a valid date`);
  return timestampFromDate(d);
}

function toInt64(value, field) {
  if (value === undefined || value === null) return 0n;
  if (typeof value === "bigint") return value;
  if (!Number.isSafeInteger(value)) throw new TypeError(`${field}: not an integer`);
  return BigInt(value);
}

/** A Contact message from `{ id?, email?, phone?, channel?, visitorId? }`. */
export function contactMessage(contact, field = "contact") {
  if (contact === null || typeof contact !== "object" || Array.isArray(contact)) {
    throw new TypeError(`${field}: expected an object like { email: "ana@example.com" }`);
  }
  const init = {};
  for (const name of CONTACT_FIELDS) {
    const value = contact[name];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string") throw new TypeError(`${field}.${name}: expected a string`);
    init[name] = value;
  }
  return create(ContactSchema, init);
}

/** The request `init` with `occurredAt` set from a Date (left out when none is given). */
export function withOccurredAt(init, occurredAt, field = "occurredAt") {
  const ts = toTimestamp(occurredAt, field);
  if (ts !== undefined) init.occurredAt = ts;
  return init;
}

export function contactMessages(contacts, field) {
  if (!Array.isArray(contacts)) throw new TypeError(`${field}: expected an array of contacts`);
  return contacts.map((contact, i) => contactMessage(contact, `${field}[${i}]`));
}

export function usageObject(usage) {
  if (!usage) return undefined;
  const out = {
    period: usage.period,
    periodStart: toDate(usage.periodStart),
    periodEnd: toDate(usage.periodEnd),
    active: toNumber(usage.active),
    limit: toNumber(usage.limit),
    remaining: toNumber(usage.remaining),
    plan: usage.plan,
    overage: toNumber(usage.overage),
  };
  if (usage.trialEndsAt) out.trialEndsAt = toDate(usage.trialEndsAt);
  return out;
}

export function decisionObject(decision) {
  return {
    allowed: decision.allowed,
    reason: enumName(ReasonSchema, decision.reason),
    contactKey: decision.contactKey,
    identityConflict: decision.identityConflict,
    shadowDenied: decision.shadowDenied,
    visitorMerged: decision.visitorMerged,
    fromLocalRecord: decision.fromLocalRecord,
    overage: decision.overage,
    usage: usageObject(decision.usage),
    fromClient: false,
  };
}

/** The Decision this client makes itself when the sidecar is unavailable. */
export function fallbackDecision(allowed) {
  return {
    allowed,
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
}

export function subscriptionRequest(request) {
  if (request === null || typeof request !== "object") {
    throw new TypeError("setSubscription: expected an object like { workspaceId, plan }");
  }
  // only the fields given are set: the rest of the subscription stays as it is
  const given = {};
  for (const [name, proto] of Object.entries(SUBSCRIPTION_FIELDS)) {
    if (request[name] !== undefined && request[name] !== null) given[name] = proto;
  }
  const message = { workspaceId: request.workspaceId ?? "" };
  for (const name of Object.keys(given)) {
    if (name === "customLimit") message.customLimit = toInt64(request.customLimit, "customLimit");
    else if (name === "startsAt") message.startsAt = toTimestamp(request.startsAt, "startsAt");
    else if (name === "thresholds") message.thresholds = [...request.thresholds];
    else if (name === "floodGuard") message.floodGuard = floodGuardMessage(request.floodGuard);
    else message[name] = request[name];
  }
  const clear = request.clear ?? [];
  if (!Array.isArray(clear) || clear.some((name) => !(name in SUBSCRIPTION_FIELDS))) {
    throw new TypeError(
      `setSubscription: clear lists fields of ${Object.keys(SUBSCRIPTION_FIELDS).join(", ")}`,
    );
  }
  if (clear.length > 0) {
    message.updateMask = {
      paths: [...Object.values(given), ...clear.map((name) => SUBSCRIPTION_FIELDS[name])],
    };
  }
  return create(SetSubscriptionRequestSchema, message);
}

// The fields of a subscription change, by their names here and in the proto.
const SUBSCRIPTION_FIELDS = {
  plan: "plan",
  packs: "packs",
  customLimit: "custom_limit",
  timezone: "timezone",
  startsAt: "starts_at",
  platformVersion: "platform_version",
  shadowMode: "shadow_mode",
  defaultRegion: "default_region",
  thresholds: "thresholds",
  overagePercent: "overage_percent",
  floodGuard: "flood_guard",
};

// { newPerMinute, action: "FLAG" | "HOLD" } as a mac.v1.FloodGuard (the sidecar checks the rate).
function floodGuardMessage(guard) {
  const action = String(guard.action ?? "").toUpperCase().replace(/^ACTION_/, "");
  if (action !== "FLAG" && action !== "HOLD") {
    throw new TypeError('setSubscription: floodGuard.action must be "FLAG" or "HOLD"');
  }
  const value = FloodGuard_ActionSchema.values.find((v) => v.name === `ACTION_${action}`);
  return { newPerMinute: guard.newPerMinute ?? 0, action: value.number };
}

// A mac.v1.FloodGuard as { newPerMinute, action: "FLAG" | "HOLD" }; undefined when unset.
function floodGuardObject(guard) {
  if (!guard) return undefined;
  return {
    newPerMinute: guard.newPerMinute,
    action: enumName(FloodGuard_ActionSchema, guard.action).replace(/^ACTION_/, ""),
  };
}

export function subscriptionObject(sub) {
  return {
    workspaceId: sub.workspaceId,
    plan: sub.plan,
    packs: sub.packs,
    customLimit: toNumber(sub.customLimit),
    timezone: sub.timezone,
    startsAt: toDate(sub.startsAt),
    platformVersion: sub.platformVersion,
    shadowMode: sub.shadowMode,
    effectiveLimit: toNumber(sub.effectiveLimit),
    isDefault: sub.isDefault,
    trialPlan: sub.trialPlan,
    trialLimit: toNumber(sub.trialLimit),
    trialEndsAt: toDate(sub.trialEndsAt),
    updatedAt: toDate(sub.updatedAt),
    defaultRegion: sub.defaultRegion,
    thresholds: [...sub.thresholds],
    defaultThresholds: sub.defaultThresholds,
    overagePercent: sub.overagePercent,
    floodGuard: floodGuardObject(sub.floodGuard),
  };
}

export function usageResponseObject(res) {
  return {
    usage: usageObject(res.usage),
    history: res.history.map((h) => ({
      period: h.period,
      active: toNumber(h.active),
      limit: toNumber(h.limit),
    })),
    closed: res.closed,
    closedAt: toDate(res.closedAt),
    floodGuard: floodGuardObject(res.floodGuard),
    lastFloodAt: toDate(res.lastFloodAt),
  };
}

export function listResponseObject(res) {
  return {
    contactKeys: [...res.contactKeys],
    nextPageToken: res.nextPageToken,
    total: toNumber(res.total),
    period: res.period,
  };
}

export function mergeResponseObject(res) {
  return {
    contactKey: res.contactKey,
    folded: res.folded,
    uncounted: res.uncounted,
    usage: usageObject(res.usage),
  };
}

export function eventObject(ev) {
  return {
    id: ev.id,
    workspaceId: ev.workspaceId,
    type: enumName(Event_TypeSchema, ev.type),
    period: ev.period,
    thresholdPercent: ev.thresholdPercent,
    active: toNumber(ev.active),
    limit: toNumber(ev.limit),
    at: toDate(ev.at),
    plan: ev.plan,
    packs: ev.packs,
    overage: toNumber(ev.overage),
    trialPlan: ev.trialPlan,
    trialEndsAt: toDate(ev.trialEndsAt),
  };
}

export function statementObject(st) {
  return {
    workspaceId: st.workspaceId,
    period: st.period,
    periodStart: toDate(st.periodStart),
    periodEnd: toDate(st.periodEnd),
    active: toNumber(st.active),
    limit: toNumber(st.limit),
    plan: st.plan,
    packs: st.packs,
    trialPlan: st.trialPlan,
    trialEndsAt: toDate(st.trialEndsAt),
    overage: toNumber(st.overage),
    closedAt: toDate(st.closedAt),
  };
}

export function statementsPageObject(res) {
  return {
    statements: res.statements.map(statementObject),
    nextPageToken: res.nextPageToken,
  };
}

/** The request of ListAuditRecords: `since` a Date (or what new Date() reads), left out when none. */
export function auditRecordsRequest(workspaceId, { since, pageSize = 0, pageToken = "" } = {}) {
  const init = { workspaceId, pageSize, pageToken };
  const ts = toTimestamp(since, "since");
  if (ts !== undefined) init.since = ts;
  return init;
}

export function auditRecordObject(record) {
  return {
    id: record.id,
    at: toDate(record.at),
    admin: record.admin,
    method: record.method,
    workspaceId: record.workspaceId,
    changed: record.changed,
    changes: record.changes.map((c) => ({ field: c.field, before: c.before, after: c.after })),
  };
}

export function auditRecordsPageObject(res) {
  return {
    records: res.records.map(auditRecordObject),
    nextPageToken: res.nextPageToken,
  };
}
