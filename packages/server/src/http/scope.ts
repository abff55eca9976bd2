// One stream scope per request (see StreamScope in streams.ts): every stream,
// child process and temporary file a request makes lives as long as the
// request. When the client goes away before the reply is done, the scope
// aborts (its signal reaches the engine calls) and everything in it is
// destroyed; an error nothing handled fails this request alone.
import { StrataError } from "@strata/contract";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ServerConfig } from "../config.js";
import { holdStrayErrorGuard, StreamScope } from "../streams.js";

declare module "fastify" {
  interface FastifyRequest {
    /** This request's stream scope: its signal aborts when the client goes away. */
    scope: StreamScope;
  }
}

/** The error a scope aborts with when its client goes away. */
export class ClientGone extends Error {
  constructor() {
    super("the client closed the connection before the reply was done");
    this.name = "ClientGone";
  }
}

/** A failure nothing handled ends the reply: a 500 when nothing was sent yet, else a cut connection. */
function failReply(request: FastifyRequest, reply: FastifyReply, error: Error, config: ServerConfig): void {
  config.log({ event: "internal_error", method: request.method, url: request.url, message: String(error?.stack ?? error) });
  const res = reply.raw;
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(new StrataError("internal", error?.message ?? String(error)).toBody());
  res.writeHead(500, { "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
}

/**
 * Gives every request its scope before anything else runs, and closes it
 * once the response is over (finished or cut), so nothing a request made
 * outlives it. Holds the stray-error guard while the server runs.
 */
export function registerStreamScopes(app: FastifyInstance, config: ServerConfig): void {
  const release = holdStrayErrorGuard();
  app.addHook("onClose", async () => release());
  app.decorateRequest("scope", null as unknown as StreamScope);
  app.addHook("onRequest", (request, reply, done) => {
    const scope: StreamScope = new StreamScope((error) => {
      // once the client has gone, a stream breaking is the consequence, not a fault of ours
      if (!(scope.signal.reason instanceof ClientGone)) failReply(request, reply, error, config);
    });
    request.scope = scope;
    let aborted = false;
    const gone = () => {
      if (aborted || reply.raw.writableFinished) return;
      aborted = true;
      config.log({ event: "request_aborted", method: request.method, url: request.url });
      scope.abort(new ClientGone());
    };
    const end = () => {
      gone();
      void scope.close();
    };
    if (request.raw.socket?.destroyed) {
      // the client left before this request was routed: nothing it starts may outlive it
      end();
      return done();
    }
    request.raw.once("close", () => {
      if (!request.raw.complete) gone();
    });
    reply.raw.once("close", end);
    done();
  });
}
