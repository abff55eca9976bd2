// Idempotency-Key on creating requests: a retry with the same key and body
// gets the first reply instead of making a second resource.
import { createHash } from "node:crypto";
import { StrataError } from "@strata/contract";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Index } from "../index/database.js";

export interface Reply {
  status: number;
  body: unknown;
}

const keyPattern = /^[\x21-\x7e]{1,255}$/;

export class Idempotency {
  private readonly inFlight = new Map<string, Promise<Reply>>();

  constructor(private readonly index: Index) {}

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
    const fingerprint = createHash("sha256").update(JSON.stringify(request.body ?? null)).digest("hex");
    const slot = `${scope}\n${key}`;
    const pending = this.inFlight.get(slot);
    if (pending) {
      const result = await pending;
      return reply.status(result.status).header("idempotent-replayed", "true").send(result.body);
    }
    const stored = this.index.findReply(scope, key);
    if (stored) {
      if (stored.fingerprint !== fingerprint) {
        throw new StrataError("idempotency_conflict", "this Idempotency-Key was used with a different request body");
      }
      return reply.status(stored.status).header("idempotent-replayed", "true").send(JSON.parse(stored.body));
    }
    const running = create();
    this.inFlight.set(slot, running);
    try {
      const result = await running;
      this.index.storeReply(scope, key, { fingerprint, status: result.status, body: JSON.stringify(result.body) });
      return reply.status(result.status).send(result.body);
    } finally {
      this.inFlight.delete(slot);
    }
  }
}
