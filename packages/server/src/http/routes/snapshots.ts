// HTTP routes of snapshots and gc.
import { routes, type CreateSnapshotRequest, type ListSnapshotsQuery } from "@strata/contract";
import type { FastifyInstance } from "fastify";
import type { Context } from "../../context.js";
import { createSnapshot } from "../../snapshots/create.js";
import { deleteSnapshot } from "../../snapshots/delete.js";
import { collectGarbage } from "../../snapshots/gc.js";
import { getSnapshot, listSnapshots } from "../../snapshots/read.js";
import { verifySnapshot } from "../../snapshots/verify.js";
import type { Idempotency } from "../idempotency.js";
import { route } from "../route.js";

type IdParams = { id: string };

export function snapshotRoutes(app: FastifyInstance, ctx: Context, idempotency: Idempotency): void {
  route(app, routes.createSnapshot, async (request, reply) =>
    idempotency.handle(request, reply, async () => ({
      status: 202,
      body: await createSnapshot(ctx, (request.params as IdParams).id, (request.body ?? {}) as CreateSnapshotRequest),
    })),
  );

  route(app, routes.listSnapshots, async (request) => listSnapshots(ctx, request.query as ListSnapshotsQuery));

  route(app, routes.getSnapshot, async (request, reply) => {
    const controller = new AbortController();
    reply.raw.on("close", () => controller.abort());
    const query = request.query as { waitSeconds?: number };
    return getSnapshot(ctx, (request.params as IdParams).id, query.waitSeconds ?? 0, controller.signal);
  });

  route(app, routes.deleteSnapshot, async (request, reply) => {
    await deleteSnapshot(ctx, (request.params as IdParams).id, (request.query as { force?: boolean }).force ?? false);
    return reply.status(204).send();
  });

  route(app, routes.verifySnapshot, async (request) => verifySnapshot(ctx, (request.params as IdParams).id));

  route(app, routes.gc, async () => collectGarbage(ctx));
}
