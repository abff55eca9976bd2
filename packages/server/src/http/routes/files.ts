// HTTP routes of sandbox files: bytes or tars in and out, streamed. An upload
// is read whole to a temporary file first (see body.ts), so a cut request
// leaves the sandbox as it was.
import { createReadStream } from "node:fs";
import { routes, StrataError } from "@strata/contract";
import type { FastifyInstance } from "fastify";
import type { Context } from "../../context.js";
import { readFile, writeFile } from "../../sandboxes/files.js";
import { runningSandbox } from "../../sandboxes/lifecycle.js";
import { adopt } from "../../streams.js";
import { spoolBody } from "../body.js";
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
  throw new StrataError("path_invalid", "query/path is not valid percent-encoded UTF-8", { details: { field: "query/path" } });
}

export function fileRoutes(app: FastifyInstance, ctx: Context): void {
  route(app, routes.readFile, async (request, reply) => {
    const download = await readFile(ctx, (request.params as Params).id, strictPath(request.raw.url, (request.query as Query).path), request.scope.signal);
    reply.type(download.contentType);
    if (download.size !== undefined) reply.header("content-length", download.size);
    return reply.send(adopt(download.stream));
  });

  route(app, routes.writeFile, async (request) => {
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]!.trim();
    if (contentType !== "application/octet-stream" && contentType !== "application/x-tar") {
      throw new StrataError("unsupported_media_type", "send the file as application/octet-stream or a tar as application/x-tar");
    }
    const query = request.query as Query;
    const path = strictPath(request.raw.url, query.path); // refused before the body is read
    await runningSandbox(ctx, (request.params as Params).id);
    const spooled = await spoolBody(request, ctx.config.home, ctx.config.maxUploadBytes);
    return writeFile(ctx, (request.params as Params).id, path, {
      body: adopt(createReadStream(spooled.path)),
      contentType,
      contentLength: spooled.size,
      signal: request.scope.signal,
      owner: query.owner,
      mode: query.mode,
    });
  });
}
