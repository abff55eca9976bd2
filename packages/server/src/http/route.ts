// Registers a route of the contract with its schemas, so validation and
// serialisation come from the one definition. Every handler runs inside its
// request's stream scope (see scope.ts).
import type { Readable } from "node:stream";
import { StrataError, type RouteSpec } from "@strata/contract";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

export type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

export function route(app: FastifyInstance, spec: RouteSpec, handler: Handler): void {
  const response: Record<number, unknown> = {};
  for (const [status, reply] of Object.entries(spec.replies)) {
    if (reply && !("raw" in reply)) response[Number(status)] = reply;
  }
  app.route({
    method: spec.method,
    url: spec.url,
    schema: {
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { querystring: spec.query } : {}),
      ...(spec.body ? { body: spec.body } : {}),
      response,
    },
    // a route that takes JSON refuses a raw body (a stream, parsed for the upload routes) before validation
    ...(spec.body
      ? {
          preValidation: async (request: FastifyRequest) => {
            const body = request.body as Readable | undefined;
            if (body && typeof body.pipe === "function") {
              body.resume();
              throw new StrataError("unsupported_media_type", "send the request body as application/json");
            }
          },
        }
      : {}),
    handler: (request, reply) => request.scope.run(() => handler(request, reply)),
  });
}
