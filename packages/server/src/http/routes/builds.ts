// HTTP routes of builds: a multipart upload in, Server-Sent Events out.
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { Ajv } from "ajv";
import { BuildArgs, describePattern, isName, Labels, Name, limits, routes, StrataError, type BuildLogEvent } from "@strata/contract";
import { formatValidation, toStrataError } from "../errors.js";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Builds, BuildRequest } from "../../builds/builds.js";
import { normalizeDockerfilePath, readDockerfile } from "../../builds/context.js";
import { route } from "../route.js";

type IdParams = { id: string };

const ajv = new Ajv({ strict: false, allErrors: false });
/** The form's JSON fields, checked by the contract's schemas as JSON bodies are. */
const formSchemas = { buildArgs: ajv.compile(BuildArgs), labels: ajv.compile(Labels) };

function parseJsonField(name: keyof typeof formSchemas, value: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new StrataError("bad_request", `${name} must be a JSON object of strings`, { details: { field: name } });
  }
  const validate = formSchemas[name];
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed) || !Object.values(parsed).every((v) => typeof v === "string")) {
    throw new StrataError("bad_request", `${name} must be a JSON object of strings`, { details: { field: name } });
  }
  if (!validate(parsed)) {
    throw toStrataError(Object.assign(formatValidation(validate.errors ?? [], name), { validation: validate.errors, validationContext: name }));
  }
  if (name === "buildArgs" && encodeURIComponent(value).length > limits.buildArgsEncodedBytes) {
    throw new StrataError("field_too_large", `buildArgs take ${encodeURIComponent(value).length} bytes URL-encoded; at most ${limits.buildArgsEncodedBytes}`, { details: { field: name } });
  }
  return parsed as Record<string, string>;
}

/** Reads the multipart form: the context goes to disk as it streams, fields are collected. */
async function readForm(request: FastifyRequest, contextFile: string): Promise<{ fields: Record<string, string>; hasContext: boolean }> {
  const fields: Record<string, string> = {};
  let hasContext = false;
  try {
    for await (const part of request.parts()) {
      if (part.type === "file") {
        if (part.fieldname !== "context" || hasContext) {
          part.file.resume();
          throw new StrataError("bad_request", `unexpected file field '${part.fieldname}' (send the context once, as 'context')`);
        }
        hasContext = true;
        await pipeline(part.file, createWriteStream(contextFile), { signal: request.scope.signal });
        if (part.file.truncated) throw new StrataError("context_too_large", "the build context is over the server's limit");
      } else {
        fields[part.fieldname] = String(part.value);
      }
    }
  } catch (error) {
    if ((error as { code?: string }).code === "FST_REQ_FILE_TOO_LARGE") {
      throw new StrataError("context_too_large", "the build context is over the server's limit");
    }
    if ((error as { code?: string }).code === "FST_INVALID_MULTIPART_CONTENT_TYPE") {
      throw new StrataError("unsupported_media_type", "send the build as multipart/form-data");
    }
    if (error instanceof StrataError) throw error;
    // a form cut short or malformed (the parser's "Unexpected end of form", a limit reached) is the client's
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 413) throw new StrataError("payload_too_large", `the form is over the server's limits: ${(error as Error).message}`);
    throw new StrataError("bad_request", `the multipart form could not be read: ${(error as Error).message}`, { cause: error });
  }
  return { fields, hasContext };
}

export function buildRoutes(app: FastifyInstance, builds: Builds): void {
  route(app, routes.createBuild, async (request, reply) => {
    const { id, contextFile } = builds.reserve();
    try {
      const { fields, hasContext } = await readForm(request, contextFile);
      if (!hasContext) throw new StrataError("bad_request", "the 'context' file field is required");
      const known = new Set(["dockerfile", "buildArgs", "name", "labels", "replace"]);
      for (const key of Object.keys(fields)) if (!known.has(key)) throw new StrataError("bad_request", `unknown field '${key}'`);
      const name = fields.name;
      if (name !== undefined && !isName(name)) throw new StrataError("bad_request", `name ${describePattern(Name.pattern!)}, at most ${limits.nameChars} characters`, { details: { field: "name" } });
      if (fields.dockerfile !== undefined && fields.dockerfile.length > limits.pathChars) {
        throw new StrataError("field_too_large", `dockerfile is ${fields.dockerfile.length} characters; at most ${limits.pathChars}`, { details: { field: "dockerfile" } });
      }
      if (fields.dockerfile?.includes("\u0000")) throw new StrataError("bad_request", "dockerfile must not contain a NUL character", { details: { field: "dockerfile" } });
      const dockerfile = normalizeDockerfilePath(fields.dockerfile ?? "Dockerfile");
      const buildRequest: BuildRequest = {
        dockerfile,
        dockerfileText: await readDockerfile(contextFile, dockerfile),
        buildArgs: fields.buildArgs ? parseJsonField("buildArgs", fields.buildArgs) : {},
        ...(name ? { name } : {}),
        labels: fields.labels ? parseJsonField("labels", fields.labels) : {},
        replace: fields.replace === "true",
      };
      const build = builds.enqueue(id, contextFile, buildRequest);
      return reply.status(202).send({ buildId: id, build });
    } catch (error) {
      builds.discard(id);
      throw error;
    }
  });

  route(app, routes.getBuild, async (request) => builds.get((request.params as IdParams).id));

  route(app, routes.cancelBuild, async (request) => builds.cancel((request.params as IdParams).id));

  route(app, routes.buildLogs, async (request, reply) => {
    const id = (request.params as IdParams).id;
    const lastHeader = request.headers["last-event-id"];
    const after = typeof lastHeader === "string" && /^\d+$/.test(lastHeader) ? Number(lastHeader) : 0;
    const backlog = builds.eventsAfter(id, after);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
    const send = (eventId: number, event: BuildLogEvent) => {
      res.write(`id: ${eventId}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
      if (event.type !== "log") res.end();
    };
    for (const { id: eventId, event } of backlog.events) send(eventId, event);
    if (backlog.finished || res.writableEnded) {
      res.end();
      return;
    }
    let next = after + backlog.events.length;
    const unsubscribe = builds.subscribe(id, (eventId, event) => {
      if (eventId <= next) return;
      next = eventId;
      send(eventId, event);
    });
    const ping = setInterval(() => res.write(": ping\n\n"), 15000);
    res.on("close", () => {
      clearInterval(ping);
      unsubscribe();
    });
  });
}
