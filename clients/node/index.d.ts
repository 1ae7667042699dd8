// Type declarations of @mac-sidecar/client (hand-written; the runtime is index.js).
/// <reference types="node" />
import { Code, ConnectError } from "@connectrpc/connect";

export { Code, ConnectError };

/** Why a contact was allowed or denied: the names of the proto enum mac.v1.Reason. */
export type Reason =
  | "REASON_UNSPECIFIED"
  | "REASON_ALREADY_ACTIVE"
  | "REASON_ADMITTED"
  | "REASON_WITHIN_LIMIT"
  | "REASON_LIMIT_REACHED"
  | "REASON_EXEMPT"
  | "REASON_TRIAL_STARTED"
  | "REASON_BACKEND_UNAVAILABLE"
  | "REASON_RATE_LIMITED";

/** What happened: the names of the proto enum mac.v1.Event.Type. */
export type EventType =
  | "TYPE_UNSPECIFIED"
  | "TYPE_THRESHOLD_CROSSED"
  | "TYPE_LIMIT_REACHED"
  | "TYPE_TRIAL_STARTED"
  | "TYPE_TRIAL_ENDED"
  | "TYPE_IDENTITY_CONFLICT"
  | "TYPE_OVERAGE_STARTED"
  | "TYPE_PERIOD_CLOSED"
  | "TYPE_FLOOD_DETECTED";

/**
 * The person behind a conversation: at least one of id, email, phone, or channel together
 * with visitorId.
 */
export interface Contact {
  /** The platform's own stable contact id; highest precedence. */
  id?: string;
  /** An email address (trimmed and lower-cased by the sidecar). */
  email?: string;
  /** A phone number, with its country code unless the subscription has a defaultRegion. */
  phone?: string;
  /** The conversation's channel (livechat, sms, whatsapp, ...). */
  channel?: string;
  /** The channel's own id of an unidentified visitor; requires channel. */
  visitorId?: string;
}

/** Usage of a workspace in one billing period. */
export interface Usage {
  /** "2026-11" */
  period: string;
  /** The period's first instant (inclusive). */
  periodStart: Date;
  /** The period's end (exclusive). */
  periodEnd: Date;
  /** Contacts counted in the period. */
  active: number;
  /** The effective limit (the trial's while one runs). */
  limit: number;
  /** limit - active, never below zero. */
  remaining: number;
  /** The plan the limit comes from. */
  plan: string;
  /** When the running fair-usage trial ends; absent when none runs. */
  trialEndsAt?: Date;
  /** New contacts admitted beyond the limit under the overage allowance in the period. */
  overage: number;
}

/** The answer for one contact. */
export interface Decision {
  allowed: boolean;
  reason: Reason | (string & {});
  /** The opaque key the contact is counted under; "" when the backend was unavailable. */
  contactKey: string;
  identityConflict: boolean;
  shadowDenied: boolean;
  visitorMerged: boolean;
  /** Answered during a Redis outage from the sidecar's record of contacts counted this period. */
  fromLocalRecord: boolean;
  /** A new contact admitted (for a check, one it would admit) beyond the limit, under the
   * subscription's overagePercent. */
  overage: boolean;
  /** Usage after the decision; undefined inside a batch and when the backend was unavailable. */
  usage: Usage | undefined;
  /** True when this client decided (onUnavailable "allow" or "deny"), not the sidecar. */
  fromClient: boolean;
}

export interface BatchDecisions {
  /** One decision per contact, in request order; their usage is undefined. */
  decisions: Decision[];
  /** Usage after the last decision; undefined when the backend was unavailable. */
  usage: Usage | undefined;
}

/**
 * A change of a workspace's subscription: the fields given change, the rest stay; `clear`
 * names fields to set back to their defaults. The first change of a workspace names a plan.
 */
export interface SubscriptionRequest {
  workspaceId: string;
  /** A plan of the catalog: starter, pro, enterprise. */
  plan?: string;
  /** MAC packs, within the plan's bounds. */
  packs?: number;
  /** Enterprise only: the base limit instead of the plan's included MACs (0 = included). */
  customLimit?: number | bigint;
  /** IANA time zone of the billing month; cleared, UTC. */
  timezone?: string;
  /** When the subscription starts; unset keeps the current start, new Date(0) clears it. */
  startsAt?: Date;
  /** The platform release, like "7.3.0". */
  platformVersion?: string;
  /** Decide and count as usual, but never deny. */
  shadowMode?: boolean;
  /** ISO 3166 region national phone numbers are read in. */
  defaultRegion?: string;
  /** Usage percentages that record THRESHOLD_CROSSED, instead of the service's. */
  thresholds?: number[];
  /** Admit new contacts beyond the limit up to this percent of it (0-100), billed as overage. */
  overagePercent?: number;
  /** Past newPerMinute new contacts in a sliding minute: FLAG admits them and records
   * TYPE_FLOOD_DETECTED, HOLD denies them with REASON_RATE_LIMITED. */
  floodGuard?: FloodGuard;
  /** Fields to set back to their defaults. */
  clear?: Array<
    | "packs"
    | "customLimit"
    | "timezone"
    | "startsAt"
    | "platformVersion"
    | "shadowMode"
    | "defaultRegion"
    | "thresholds"
    | "overagePercent"
    | "floodGuard"
  >;
}

/** The guard against floods of new contacts. */
export interface FloodGuard {
  /** New contacts a sliding minute may take, 1 to 1,000,000. */
  newPerMinute: number;
  action: "FLAG" | "HOLD";
}

/** One call of activateStream. */
export interface StreamCall {
  workspaceId: string;
  contact: Contact;
  /** A Check (what Activate would answer, changing nothing) instead of an Activate. */
  check?: boolean;
  /** Echoed in the answer; default the call's position in the stream. */
  tag?: number;
  /** When the contact happened (default now): decided and counted in that time's period. */
  occurredAt?: Date;
}

/**
 * When the contact happened (default now): it is decided and counted in the period that
 * contains it, at that period's limit; a time in a closed period is refused
 * FAILED_PRECONDITION, one too far ahead of the sidecar's clock INVALID_ARGUMENT.
 */
export interface EventTime {
  occurredAt?: Date;
}

/** The answer of a stream call the sidecar refused (the gRPC status code and message). */
export interface StreamFailure {
  error: { code: number; message: string };
  tag: number;
}

/** What CheckBatch answers: what activateBatch would do now, and its totals. */
export interface BatchCheck {
  /** One decision per contact, in request order (REASON_WITHIN_LIMIT: it would count). */
  decisions: Decision[];
  /** Contacts it would count within the limit (or by starting a trial). */
  admitted: number;
  /** Contacts it would admit beyond the limit under overagePercent (not in admitted). */
  overage: number;
  /** Contacts already counted (or earlier in the batch). */
  alreadyActive: number;
  /** Contacts it would allow without counting: exempt, or shadow mode. */
  uncounted: number;
  /** Contacts it would deny. */
  denied: number;
  /** True when it would deny none. */
  fits: boolean;
  /** Usage as it stands. */
  usage: Usage | undefined;
}

export interface Subscription {
  workspaceId: string;
  plan: string;
  packs: number;
  customLimit: number;
  timezone: string;
  startsAt: Date | undefined;
  platformVersion: string;
  shadowMode: boolean;
  effectiveLimit: number;
  /** True when no subscription was set and the default plan applies. */
  isDefault: boolean;
  trialPlan: string;
  trialLimit: number;
  trialEndsAt: Date | undefined;
  updatedAt: Date | undefined;
  defaultRegion: string;
  /** The usage percentages that record THRESHOLD_CROSSED for this workspace. */
  thresholds: number[];
  /** True when they are the service's MAC_THRESHOLDS. */
  defaultThresholds: boolean;
  /** The overage allowance, percent of the limit (0: none). */
  overagePercent: number;
  /** The flood guard; undefined for none. */
  floodGuard: FloodGuard | undefined;
}

export interface PeriodCount {
  period: string;
  active: number;
  limit: number;
}

export interface UsageReport {
  usage: Usage | undefined;
  /** Past periods, newest first. */
  history: PeriodCount[];
  /** True once the period is closed (MAC_LATENESS_SECONDS after its end): its count is final. */
  closed: boolean;
  /** When it was closed; undefined while it is open. */
  closedAt: Date | undefined;
  /** The workspace's flood guard; undefined for none. */
  floodGuard: FloodGuard | undefined;
  /** When the last flood was detected (TYPE_FLOOD_DETECTED); undefined for none. */
  lastFloodAt: Date | undefined;
}

export interface ListStatementsOptions {
  /** From the previous page's nextPageToken; "" to start. */
  pageToken?: string;
  /** At most this many statements per page (1-1000; 0 = the sidecar's default, 100). */
  pageSize?: number;
}

/** A workspace's final record of one closed period: what to invoice. */
export interface Statement {
  workspaceId: string;
  /** "2026-11". */
  period: string;
  /** The period's first instant (a subscription's start inside the month gives two statements). */
  periodStart: Date | undefined;
  /** The period's end (exclusive). */
  periodEnd: Date | undefined;
  /** Contacts counted in the period: the figure to bill. */
  active: number;
  limit: number;
  plan: string;
  packs: number;
  /** The plan of a fair-usage trial that ran in the period; "" for none. */
  trialPlan: string;
  trialEndsAt: Date | undefined;
  /** Contacts admitted beyond the limit under the overage allowance. */
  overage: number;
  closedAt: Date | undefined;
}

export interface StatementsPage {
  /** A workspace may appear on two pages: deduplicate on (workspaceId, periodStart). */
  statements: Statement[];
  /** "" when the listing is complete. */
  nextPageToken: string;
}

export interface ListAuditRecordsOptions {
  /** Only records at or after this instant; undefined for every record kept (MAC_AUDIT_RETENTION_DAYS). */
  since?: Date | string | number;
  /** At most this many records per page (1-1000; 0 = the sidecar's default, 100). */
  pageSize?: number;
  /** From the previous page's nextPageToken; "" to start. */
  pageToken?: string;
}

/** One field's value before and after a change; a count (Merge, SetExempt, Forget) has after alone. */
export interface AuditChange {
  /** As named in the API: "packs", "shadow_mode", "identities_folded", "contacts_exempted". */
  field: string;
  /** "" when it had none, and for a count. */
  before: string;
  after: string;
}

/** One Admin call that changed, or could have changed, a workspace. Never holds a contact's identifier. */
export interface AuditRecord {
  /** Unique within the workspace, increasing with time. */
  id: string;
  at: Date | undefined;
  /** The admin who made it ("admin" for MAC_ADMIN_TOKEN and a sidecar without a token). */
  admin: string;
  /** SetSubscription, Merge, SetExempt, Forget. */
  method: string;
  workspaceId: string;
  /** False when the call changed nothing (the same values set again). */
  changed: boolean;
  changes: AuditChange[];
}

export interface AuditRecordsPage {
  /** Newest first. */
  records: AuditRecord[];
  /** "" when the listing is complete. */
  nextPageToken: string;
}

export interface ListActiveContactsOptions {
  /** "YYYY-MM"; "" (default) for the current period. */
  period?: string;
  /** From the previous page's nextPageToken; "" to start. */
  pageToken?: string;
  /** About this many keys per page (1-10000; 0 = the sidecar's default, 1000). */
  pageSize?: number;
}

export interface ActiveContactsPage {
  /** Contact keys; a key may appear on two pages: deduplicate. */
  contactKeys: string[];
  /** "" when the listing is complete. */
  nextPageToken: string;
  /** Contacts counted in the period when the page was read. */
  total: number;
  period: string;
}

export interface MergeResult {
  /** The surviving identity's key. */
  contactKey: string;
  /** Identities folded into it by this call. */
  folded: number;
  /** Folded identities no longer counted in the current period. */
  uncounted: number;
  usage: Usage | undefined;
}

export interface ExemptResult {
  /** The identity key of each contact, in request order. */
  contactKeys: string[];
}

/** What a Forget erased. */
export interface ForgetResult {
  /** False when nothing was known of the contact (or it was forgotten before). */
  forgotten: boolean;
  /** Identifiers erased (emails, phones, ids and visitor ids). */
  identifiersRemoved: number;
  /** Periods the person was counted in: it stays counted there, anonymously. */
  periods: number;
}

/** A recorded notification event. */
export interface MacEvent {
  /** Increasing within a workspace; resume after it with watchEvents(ws, id). */
  id: string;
  workspaceId: string;
  type: EventType | (string & {});
  period: string;
  /** For TYPE_THRESHOLD_CROSSED: the threshold, percent; 0 otherwise. */
  thresholdPercent: number;
  active: number;
  limit: number;
  at: Date;
  /** For TYPE_PERIOD_CLOSED: the period's final plan, packs, overage and trial; empty otherwise. */
  plan: string;
  packs: number;
  overage: number;
  trialPlan: string;
  trialEndsAt: Date | undefined;
}

export interface WatchOptions {
  /** Aborting it ends the stream (the iteration finishes without an error). */
  signal?: AbortSignal;
}

/** TLS material: Buffers or PEM strings. */
export interface TlsOptions {
  /** CA certificate(s) to trust instead of the system's. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate, for mutual TLS. */
  cert?: string | Buffer | Array<string | Buffer>;
  /** Client private key, for mutual TLS. */
  key?: string | Buffer | Array<string | Buffer>;
  /** The name to verify the server's certificate against (and send as SNI). */
  serverName?: string;
}

export interface ClientOptions {
  /** The whole time one unary call may take, retries included. Default 1000. */
  deadlineMs?: number;
  /** Admin token, sent as "authorization: Bearer <token>" on Admin calls. Default "". */
  token?: string;
  /** Speak https (TLS) when given; plaintext HTTP/2 otherwise. */
  tls?: TlsOptions | true;
  /** Further attempts after UNAVAILABLE. Default 2. */
  retries?: number;
  /**
   * What check, activate and activateBatch answer when the sidecar cannot be reached, answers
   * UNAVAILABLE, or does not answer within the deadline, after the retries: "throw" (default)
   * rejects with the ConnectError; "allow" / "deny" answer a REASON_BACKEND_UNAVAILABLE
   * decision with fromClient: true. Admin calls always throw.
   */
  onUnavailable?: "throw" | "allow" | "deny";
}

export interface MacClient {
  /** What activate would answer; changes nothing. */
  check(workspaceId: string, contact: Contact, options?: EventTime): Promise<Decision>;
  /** Admits and counts a new contact while below the limit; an active contact is always allowed. */
  activate(workspaceId: string, contact: Contact, options?: EventTime): Promise<Decision>;
  /** Decides several contacts in request order, in one atomic step. */
  activateBatch(
    workspaceId: string,
    contacts: Contact[],
    options?: EventTime,
  ): Promise<BatchDecisions>;
  /**
   * Activate (or, with `check: true`, Check) calls on one bidirectional stream: answers come
   * in order, one per call, each a Decision with the call's `tag` (default: its position), or
   * `{ error: { code, message }, tag }` for a call the sidecar refused (the stream goes on).
   * Ends when `calls` ends; abort `signal` or close the client to stop it.
   */
  activateStream(
    calls: AsyncIterable<StreamCall> | Iterable<StreamCall>,
    options?: { signal?: AbortSignal },
  ): AsyncGenerator<(Decision & { tag: number }) | StreamFailure>;
  /** What activateBatch would answer now, with its totals; changes nothing. */
  checkBatch(workspaceId: string, contacts: Contact[], options?: EventTime): Promise<BatchCheck>;

  /** Changes the fields given of a workspace's subscription; answers it as stored. */
  setSubscription(request: SubscriptionRequest): Promise<Subscription>;
  /** The workspace's subscription, or the default plan's (isDefault). */
  getSubscription(workspaceId: string): Promise<Subscription>;
  /** A period's usage ("YYYY-MM"; "" for the current one) and past periods' counts. */
  getUsage(workspaceId: string, period?: string): Promise<UsageReport>;
  /** One page of the contact keys counted in a period. */
  listActiveContacts(workspaceId: string, options?: ListActiveContactsOptions): Promise<ActiveContactsPage>;
  /**
   * One page of the statements of a closed month ("YYYY-MM"); rejects with
   * FailedPrecondition while the month may still be open in some time zone.
   */
  listStatements(period: string, options?: ListStatementsOptions): Promise<StatementsPage>;
  /** One page of a workspace's audit trail, newest first. */
  listAuditRecords(workspaceId: string, options?: ListAuditRecordsOptions): Promise<AuditRecordsPage>;
  /** Folds the sources' identities into the target's. */
  merge(workspaceId: string, sources: Contact[], target: Contact): Promise<MergeResult>;
  /** Exempts contacts (exempt = true, the default) or makes them countable again. */
  setExempt(workspaceId: string, contacts: Contact[], exempt?: boolean): Promise<ExemptResult>;
  /**
   * Erases the person the contact resolves to: its links, exemption and place in every period
   * kept (the counts stay; a returning person is a new contact). Forgetting twice changes
   * nothing the second time (forgotten = false).
   */
  forget(workspaceId: string, contact: Contact): Promise<ForgetResult>;
  /**
   * Recorded events after afterId ("" for all), then live ones, of one workspace ("" for
   * every workspace). Ends when the loop breaks, on return(), when options.signal aborts or
   * the client closes; otherwise the stream's failure rejects next() with a ConnectError.
   */
  watchEvents(workspaceId?: string, afterId?: string, options?: WatchOptions): AsyncIterableIterator<MacEvent>;

  /** Closes the HTTP/2 connection and ends open event streams; later calls reject (Canceled). */
  close(): void;
}

/** A client of the sidecar at address, "host:port" (like "127.0.0.1:50051" or "[::1]:50051"). */
export function createClient(address: string, options?: ClientOptions): MacClient;
