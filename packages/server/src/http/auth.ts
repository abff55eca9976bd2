// Bearer-token check, on when the server has an API key.
import { createHash, timingSafeEqual } from "node:crypto";
import { StrataError } from "@strata/contract";
import type { FastifyInstance } from "fastify";

const digest = (value: string) => createHash("sha256").update(value).digest();

export function registerAuth(app: FastifyInstance, apiKey: string | undefined): void {
  if (!apiKey) return;
  const expected = digest(apiKey);
  app.addHook("onRequest", async (request) => {
    const header = request.headers.authorization ?? "";
    const token = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
    if (!token || !timingSafeEqual(digest(token), expected)) {
      throw new StrataError("unauthorized", "a valid 'Authorization: Bearer <key>' header is required");
    }
  });
}
