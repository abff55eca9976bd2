// Idempotency-Key on creating requests: a retry with the same key and the same
// request (same meaning: canonical JSON, so key order and spacing don't count)
// gets the first reply instead of making a second resource. The key is claimed
// atomically in the index before the work starts, so of two concurrent
// requests with one key only one runs; a different request under a used key
// is 409 idempotency_conflict. Keys are kept `limits.idempotencyHours` hours.
import { createHash } from "node:crypto";
import { limits, StrataError } from "@strata/contract";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Index } from "../index/database.js";
import { canonicalJson } from "../snapshots/manifest.js";

export interface Reply {
  status: number;
  body: unknown;
}

const keyPattern = /^[\x21-\x7e]{1,255}$/;

/** What a request means, independent of how its JSON was written: sha256 of its canonical form. */
export function requestFingerprint(scope: string, body: unknown): string {
  return createHash("sha256").update(`${scope}\n${canonicalJson(body ?? null)}`).digest("hex");
}

export class Idempotency {
  private readonly inFlight = new Map<string, Promise<Reply>>();

  constructor(private readonly index: Index, private readonly now: () => number = Date.now) {
    // Claims of requests a stopped server never answered can't be answered now.
    index.dropUnansweredClaims();
    this.expire();
  }

  /** Forgets keys older than the retention, so a key is kept exactly that long. */
  private expire(): void {
    this.index.expireReplies(new Date(this.now() - limits.idempotencyHours * 3600 * 1000).toISOString());
  }

  /** Runs create once per key; replays the stored reply for a repeated key. */
  async handle(request: FastifyRequest, reply: FastifyReply, create: () => Promise<Reply>): Promise<FastifyReply> {
    const key = request.headers["idempotency-key"];
    if (key === undefined) {
      const result = await create();
      return reply.status(result.status).send(result.body);
    }
    if (typeof key !== "string" || !keyPattern.test(key)) {
      throw new StrataError("bad_request", "header Idempotency-Key must be 1 to 255 visible ASCII characters");
    }
    const scope = `${request.method} ${request.url.split("?")[0]}`;
    const fingerprint = requestFingerprint(scope, request.body);
    const slot = `${scope}\n${key}`;
    this.expire();
    if (this.index.claimReply(scope, key, fingerprint)) {
      const running = create();
      this.inFlight.set(slot, running);
      try {
        const result = await running;
        this.index.storeReply(scope, key, { fingerprint, status: result.status, body: JSON.stringify(result.body) });
        return reply.status(result.status).send(result.body);
      } catch (error) {
        this.index.releaseReply(scope, key);
        throw error;
      } finally {
        this.inFlight.delete(slot);
      }
    }
    const stored = this.index.findReply(scope, key);
    if (stored && stored.fingerprint !== fingerprint) {
      throw new StrataError("idempotency_conflict", "this Idempotency-Key was used with a different request");
    }
    if (stored && stored.status !== 0) {
      return reply.status(stored.status).header("idempotent-replayed", "true").send(JSON.parse(stored.body));
    }
    // The same request is running: answer with its outcome.
    const pending = this.inFlight.get(slot);
    if (!pending) throw new StrataError("idempotency_conflict", "a request with this Idempotency-Key is still running; retry");
    const result = await pending;
    return reply.status(result.status).header("idempotent-replayed", "true").send(result.body);
  }
}
