// Retries of unary calls on UNAVAILABLE: exponential backoff with full jitter, all attempts
// inside one deadline.
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";

export const BACKOFF_BASE_MS = 25;
export const BACKOFF_FACTOR = 2;
export const BACKOFF_CAP_MS = 1000;

/** Full jitter: a uniformly random wait in [0, min(cap, base * factor^retry)). */
export function backoffMs(retry, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * BACKOFF_FACTOR ** retry);
  return random() * ceiling;
}

/**
 * Runs `attempt(timeoutMs)` once, and again after an UNAVAILABLE answer, at most `retries`
 * more times, never past `deadlineMs` from now: each attempt gets what is left of the
 * deadline as its timeout, and no retry starts whose backoff would end past the deadline.
 * Resolves with the first answer; rejects with a ConnectError (the last one on UNAVAILABLE,
 * DEADLINE_EXCEEDED when the deadline ran out).
 */
export async function withRetries(attempt, { deadlineMs, retries }) {
  const deadline = performance.now() + deadlineMs;
  for (let retry = 0; ; retry++) {
    const left = Math.floor(deadline - performance.now());
    if (left <= 0) {
      throw new ConnectError("the deadline ran out", Code.DeadlineExceeded);
    }
    try {
      return await attempt(left);
    } catch (err) {
      const error = ConnectError.from(err);
      if (error.code !== Code.Unavailable || retry >= retries) throw error;
      const wait = backoffMs(retry);
      // A retry needs time to be answered too: keep at least a millisecond after the wait.
      if (performance.now() + wait >= deadline - 1) throw error;
      await sleep(wait);
    }
  }
}
