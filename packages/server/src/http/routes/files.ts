// HTTP routes of sandbox files: bytes or tars in and out, streamed.
import type { Readable } from "node:stream";
import { routes, StrataError } from "@strata/contract";
import type { FastifyInstance } from "fastify";
import type { Context } from "../../context.js";
import { readFile, writeFile } from "../../sandboxes/files.js";
import { route } from "../route.js";

type Params = { id: string };
type Query = { path: string; owner?: string; mode?: string };

/**
 * The `path` query parameter decoded strictly from the raw URL: the
 * framework's decoder keeps malformed escapes or replaces bytes that are not
 * UTF-8, which would name another file than the one meant. path_invalid.
 */
function strictPath(rawUrl: string | undefined, parsed: string): string {
  const query = (rawUrl ?? "").split("?").slice(1).join("?");
  for (const pair of query.split("&")) {
    const [key, value = ""] = pair.split("=", 2) as [string, string?];
    if (key !== "path") continue;
    try {
      const decoded = decodeURIComponent(value.replace(/\+/g, " "));
      if (decoded !== parsed) break;
      return decoded;
    } catch {
      break;
    }
  }
  throw new StrataError("path_invalid", "query/path is not valid percent-encoded UTF-8");
}

export function fileRoutes(app: FastifyInstance, ctx: Context): void {
  route(app, routes.readFile, async (request, reply) => {
    const controller = new AbortController();
    reply.raw.on("close", () => controller.abort());
    const download = await readFile(ctx, (request.params as Params).id, strictPath(request.raw.url, (request.query as Query).path), controller.signal);
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
    const query = request.query as Query;
    let path: string;
    try {
      path = strictPath(request.raw.url, query.path);
    } catch (error) {
      (request.body as Readable).resume();
      throw error;
    }
    return writeFile(ctx, (request.params as Params).id, path, {
      body: request.body as Readable,
      contentType,
      contentLength: length !== undefined ? Number(length) : undefined,
      owner: query.owner,
      mode: query.mode,
    });
  });
}
