// HTTP routes of snapshots and gc.
import { PassThrough, type Readable } from "node:stream";
import { routes, StrataError, type CreateSnapshotRequest, type ListSnapshotsQuery, type PushEvent } from "@strata/contract";
import type { FastifyInstance } from "fastify";
import type { Context } from "../../context.js";
import { createSnapshot } from "../../snapshots/create.js";
import { deleteSnapshot } from "../../snapshots/delete.js";
import { collectGarbage } from "../../snapshots/gc.js";
import { getSnapshot, listSnapshots } from "../../snapshots/read.js";
import { verifySnapshot } from "../../snapshots/verify.js";
import { exportSnapshot } from "../../snapshots/export.js";
import { importArchive } from "../../snapshots/import.js";
import { reindexSnapshots } from "../../snapshots/recover.js";
import { pushSnapshot } from "../../snapshots/push.js";
import { readySnapshot } from "../../snapshots/find.js";
import { adopt } from "../../streams.js";
import { toStrataError } from "../errors.js";
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
    const query = request.query as { waitSeconds?: number };
    return getSnapshot(ctx, (request.params as IdParams).id, query.waitSeconds ?? 0, request.scope.signal);
  });

  route(app, routes.deleteSnapshot, async (request, reply) => {
    await deleteSnapshot(ctx, (request.params as IdParams).id, (request.query as { force?: boolean }).force ?? false);
    return reply.status(204).send();
  });

  route(app, routes.verifySnapshot, async (request) => verifySnapshot(ctx, (request.params as IdParams).id));

  route(app, routes.exportSnapshot, async (request, reply) => {
    const query = request.query as { withParents?: boolean; withImage?: boolean; compression?: "zstd" | "none" };
    const archive = await exportSnapshot(ctx, (request.params as IdParams).id, { ...query, signal: request.scope.signal });
    // written straight into the response: each piece once the last has gone (see writeTo)
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": archive.contentType, "content-disposition": `attachment; filename="${archive.filename}"` });
    await archive.writeTo(reply.raw).catch((error: unknown) => {
      ctx.config.log({ event: "export_failed", snapshot: (request.params as IdParams).id, error: (error as Error).message });
      reply.raw.destroy();
    });
  });

  route(app, routes.importSnapshot, async (request, reply) => {
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]!.trim();
    if (!["application/zstd", "application/x-tar", "application/octet-stream"].includes(contentType)) {
      throw new StrataError("unsupported_media_type", "send the archive as application/zstd, application/x-tar or application/octet-stream");
    }
    const result = await importArchive(ctx, request.body as Readable, request.scope.signal);
    return reply.status(201).send(result);
  });

  route(app, routes.pushSnapshot, async (request, reply) => {
    const id = (request.params as IdParams).id;
    const body = (request.body ?? {}) as { repository?: string };
    const signal = request.scope.signal;
    if (!(request.headers.accept ?? "").includes("application/x-ndjson")) {
      return pushSnapshot(ctx, id, { repository: body.repository, signal });
    }
    // Streaming form: progress as the engine reports it, then the snapshot.
    readySnapshot(ctx, id);
    const out = adopt(new PassThrough());
    const emit = (event: PushEvent) => out.write(`${JSON.stringify(event)}\n`);
    pushSnapshot(ctx, id, { repository: body.repository, signal, onProgress: (p) => emit({ type: "progress", ...p }) })
      .then((snapshot) => emit({ type: "done", snapshot }))
      .catch((error) => {
        const strataError = toStrataError(error);
        emit({ type: "error", code: strataError.code, message: strataError.message });
      })
      .finally(() => out.end());
    return reply.type("application/x-ndjson").header("cache-control", "no-store").send(out);
  });

  route(app, routes.reindexSnapshots, async () => reindexSnapshots(ctx));

  route(app, routes.gc, async () => collectGarbage(ctx));
}
