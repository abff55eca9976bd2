// Retrying transient failures with bounded exponential backoff and jitter.
import { StrataError } from "@strata/contract";

export interface RetryOptions {
  /** Attempts after the first (default 4). */
  retries?: number;
  /** First delay in ms (default 200); doubles each time up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
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
