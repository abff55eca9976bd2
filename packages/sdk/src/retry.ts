// Retrying transient failures with bounded exponential backoff and jitter.
import { StrataError } from "@strata/contract";

/** How `withRetry` spaces and bounds its attempts. */
export interface RetryOptions {
  /** Attempts after the first (default 4). */
  retries?: number;
  /** First delay in ms (default 200); doubles each time up to maxDelayMs. */
  baseDelayMs?: number;
  /** Longest delay between two attempts, in ms (default 5000). */
  maxDelayMs?: number;
  /** Stops waiting and retrying: the pending wait rejects with the signal's reason. */
  signal?: AbortSignal;
}

const transientStatuses = new Set([408, 429, 502, 503, 504]);

/** Connection failures and 408, 429, 502, 503, 504 are worth another try. */
export function isTransient(error: unknown): boolean {
  if (error instanceof StrataError) return transientStatuses.has(error.status) || error.code === "engine_unavailable";
  const name = (error as Error | undefined)?.name;
  if (name === "AbortError") return false;
  return error instanceof TypeError || /ECONNRESET|ECONNREFUSED|EPIPE|socket|terminated/i.test(String((error as Error)?.message ?? error));
}

/** Resolves after `ms` milliseconds; rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Calls `attempt(n)` (n = 0 for the first try) until it resolves, retrying
 * only failures `isTransient` accepts, after a delay of half to all of
 * `baseDelayMs * 2^n` (capped at `maxDelayMs`). Resolves with the attempt's
 * value; rejects with the last error when it is not transient, when the
 * retries are spent, or with the signal's reason when `signal` aborts.
 * Retry only calls that are safe to repeat: pass an idempotency key to
 * creates (`sandboxes.create`, `sandbox.snapshot`), so a retry after a lost
 * reply returns the first result instead of making a second one.
 */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const retries = options.retries ?? 4;
  const base = options.baseDelayMs ?? 200;
  const max = options.maxDelayMs ?? 5000;
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (n >= retries || options.signal?.aborted || !isTransient(error)) throw error;
      const delay = Math.min(max, base * 2 ** n);
      await sleep(delay / 2 + Math.random() * (delay / 2), options.signal);
    }
  }
}
