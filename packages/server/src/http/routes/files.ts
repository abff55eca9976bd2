// HTTP routes of sandbox files: bytes or tars in and out, streamed.
import type { Readable } from "node:stream";
import { routes, StrataError } from "@strata/contract";
import type { FastifyInstance } from "fastify";
import type { Context } from "../../context.js";
import { readFile, writeFile } from "../../sandboxes/files.js";
import { route } from "../route.js";

type Params = { id: string };
type Query = { path: string };

export function fileRoutes(app: FastifyInstance, ctx: Context): void {
  route(app, routes.readFile, async (request, reply) => {
    const controller = new AbortController();
    reply.raw.on("close", () => controller.abort());
    const download = await readFile(ctx, (request.params as Params).id, (request.query as Query).path, controller.signal);
    reply.type(download.contentType);
    if (download.size !== undefined) reply.header("content-length", download.size);
    return reply.send(download.stream);
  });

  route(app, routes.writeFile, async (request) => {
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]!.trim();
    if (contentType !== "application/octet-stream" && contentType !== "application/x-tar") {
      throw new StrataError("unsupported_media_type", "send the file as application/octet-stream or a tar as application/x-tar");
    }
    const length = request.headers["content-length"];
    return writeFile(ctx, (request.params as Params).id, (request.query as Query).path, {
      body: request.body as Readable,
      contentType,
      contentLength: length !== undefined ? Number(length) : undefined,
    });
  });
}
