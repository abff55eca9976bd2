// HTTP routes of sandboxes: translate requests to service calls, nothing more.
import { PassThrough } from "node:stream";
import { processInputProblem, routes, StrataError, type CreateSandboxRequest, type ExecEvent, type ExecRequest, type ListSandboxesQuery } from "@strata/contract";
import type { FastifyInstance } from "fastify";
import type { Context } from "../../context.js";
import { createSandbox } from "../../sandboxes/create.js";
import { forkSandbox } from "../../sandboxes/fork.js";
import { execBuffered, execStreaming } from "../../sandboxes/exec.js";
import { deleteSandbox, getSandbox, listSandboxes, startSandbox, stopSandbox } from "../../sandboxes/lifecycle.js";
import { adopt } from "../../streams.js";
import { toStrataError } from "../errors.js";
import type { Idempotency } from "../idempotency.js";
import { route } from "../route.js";

type IdParams = { id: string };

/**
 * Refuses a command and environment the kernel or the runtime could not take
 * (413 field_too_large naming the field), before the engine sees them.
 */
function checkProcessInput(body: { cmd?: string[]; env?: Record<string, string> }): void {
  const problem = processInputProblem(body, "body");
  if (problem) throw new StrataError("field_too_large", problem.message, { details: { field: problem.field } });
}

export function sandboxRoutes(app: FastifyInstance, ctx: Context, idempotency: Idempotency): void {
  route(app, routes.createSandbox, async (request, reply) => {
    checkProcessInput(request.body as CreateSandboxRequest);
    return idempotency.handle(request, reply, async () => ({ status: 201, body: await createSandbox(ctx, request.body as CreateSandboxRequest) }));
  });

  route(app, routes.listSandboxes, async (request) => ({
    sandboxes: await listSandboxes(ctx, request.query as ListSandboxesQuery),
  }));

  route(app, routes.getSandbox, async (request) => getSandbox(ctx, (request.params as IdParams).id));

  route(app, routes.deleteSandbox, async (request, reply) => {
    await deleteSandbox(ctx, (request.params as IdParams).id);
    return reply.status(204).send();
  });

  route(app, routes.stopSandbox, async (request) => {
    const query = request.query as { timeoutSeconds?: number };
    return stopSandbox(ctx, (request.params as IdParams).id, query.timeoutSeconds);
  });

  route(app, routes.startSandbox, async (request) => startSandbox(ctx, (request.params as IdParams).id));

  route(app, routes.exec, async (request) => {
    checkProcessInput(request.body as ExecRequest);
    return execBuffered(ctx, (request.params as IdParams).id, request.body as ExecRequest, request.scope.signal);
  });

  route(app, routes.forkSandbox, async (request, reply) => {
    const count = (request.body as { count?: number } | undefined)?.count ?? 1;
    return reply.status(201).send(await forkSandbox(ctx, (request.params as IdParams).id, count));
  });

  route(app, routes.execStream, async (request, reply) => {
    checkProcessInput(request.body as ExecRequest);
    const signal = request.scope.signal;
    const run = await execStreaming(ctx, (request.params as IdParams).id, request.body as ExecRequest, signal);
    const out = adopt(new PassThrough());
    const emit = (event: ExecEvent) => out.write(`${JSON.stringify(event)}\n`);
    run(emit)
      .catch((error) => {
        const strataError = toStrataError(error);
        emit({ type: "error", code: strataError.code, message: strataError.message });
      })
      .finally(() => out.end());
    return reply.type("application/x-ndjson").header("cache-control", "no-store").send(out);
  });
}
