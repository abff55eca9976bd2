// HTTP routes of builds: a multipart upload in, Server-Sent Events out.
import { createWriteStream } from "node:fs";
import { finished, pipeline } from "node:stream/promises";
import { Ajv } from "ajv";
import { BuildArgs, describePattern, isName, Labels, Name, limits, routes, StrataError, type BuildLogEvent } from "@strata/contract";
import { formatValidation, toStrataError } from "../errors.js";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Builds, BuildRequest } from "../../builds/builds.js";
import { normalizeDockerfilePath, prepareContext } from "../../builds/context.js";
import { route } from "../route.js";
import { eventStream } from "../sse.js";

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

/**
 * Watches the raw body for the multipart closing delimiter (`--boundary--`),
 * which the form parser does not report: a body cut short between parts
 * would otherwise read as a whole form missing its later fields.
 */
function closingDelimiter(request: FastifyRequest): { seen(): Promise<boolean>; stop(): void } {
  const boundary = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(request.headers["content-type"] ?? "");
  const closing = Buffer.from(`--${boundary?.[1] ?? boundary?.[2] ?? ""}--`);
  let tail = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    tail = Buffer.concat([tail, chunk]).subarray(-(closing.length + 64));
  };
  request.raw.on("data", onData);
  const ended = () => tail.toString("latin1").trimEnd().endsWith(closing.toString("latin1"));
  return {
    /** Whether the body ended with the closing delimiter; waits for the body's end when it has not come yet. */
    async seen() {
      if (!ended() && !request.raw.readableEnded && !request.raw.destroyed) await finished(request.raw).catch(() => undefined);
      return ended();
    },
    stop: () => void request.raw.off("data", onData),
  };
}

const cutShort = () => new StrataError("bad_request", "the multipart upload ends before its closing boundary");

/** The form fields a build takes. */
const knownFields = new Set(["dockerfile", "buildArgs", "name", "labels", "replace"]);

/**
 * Fields read before a form is refused as too large. The form parser's own
 * limit is one more: a limit it reaches stops the body under a file part
 * being read, so this one must be reached first.
 */
export const maxFormFields = 16;

/** Reads the multipart form: the context goes to disk as it streams, fields are collected. */
async function readForm(request: FastifyRequest, contextFile: string): Promise<{ fields: Record<string, string>; hasContext: boolean }> {
  // the parser is piped first: a data listener added before would start the flow without it
  const parts = request.parts();
  const delimiter = closingDelimiter(request);
  try {
    const form = await readParts(parts, contextFile, request.scope.signal);
    if (!(await delimiter.seen())) throw cutShort();
    return form;
  } catch (error) {
    throw formError(error, request);
  } finally {
    delimiter.stop();
  }
}

async function readParts(parts: ReturnType<FastifyRequest["parts"]>, contextFile: string, signal: AbortSignal): Promise<{ fields: Record<string, string>; hasContext: boolean }> {
  const fields: Record<string, string> = {};
  let hasContext = false;
  let fieldCount = 0;
  for await (const part of parts) {
    if (part.type === "file") {
      if (part.fieldname !== "context" || hasContext) {
        part.file.resume();
        throw new StrataError("bad_request", `unexpected file field '${part.fieldname}' (send the context once, as 'context')`);
      }
      hasContext = true;
      await pipeline(part.file, createWriteStream(contextFile), { signal });
      if (part.file.truncated) throw new StrataError("context_too_large", "the build context is over the server's limit");
    } else {
      if (++fieldCount > maxFormFields) {
        throw new StrataError("payload_too_large", `the form has more than ${maxFormFields} fields; send one 'context' file and the fields ${[...knownFields].join(", ")}`);
      }
      if (!knownFields.has(part.fieldname)) throw new StrataError("bad_request", `unknown field '${part.fieldname}'`);
      if (part.valueTruncated || part.fieldnameTruncated) throw new StrataError("payload_too_large", `the field '${part.fieldname}' is over the server's limit`);
      fields[part.fieldname] = String(part.value);
    }
  }
  return { fields, hasContext };
}

/** A failure while reading the form as a StrataError: the form parser's limits and a body cut short are the client's. */
function formError(error: unknown, request: FastifyRequest): unknown {
  if (error instanceof StrataError) return error;
  const code = (error as { code?: string }).code;
  if (code === "FST_REQ_FILE_TOO_LARGE") return new StrataError("context_too_large", "the build context is over the server's limit");
  if (code === "FST_INVALID_MULTIPART_CONTENT_TYPE") return new StrataError("unsupported_media_type", "send the build as multipart/form-data");
  if (code === "FST_PARTS_LIMIT" || code === "FST_FILES_LIMIT" || code === "FST_FIELDS_LIMIT") {
    return new StrataError("payload_too_large", `the form has too many parts (${(error as Error).message}); send one 'context' file and the fields ${[...knownFields].join(", ")}`);
  }
  if (code === "FST_PROTO_VIOLATION") return new StrataError("bad_request", "a form field is named after an object property");
  // the client went away in the middle of a part
  if (code === "ERR_STREAM_PREMATURE_CLOSE" || request.raw.destroyed) return cutShort();
  const message = (error as Error).message ?? "";
  if (/terminated early|unexpected end/i.test(message)) return cutShort();
  if (/malformed|boundary/i.test(message)) return new StrataError("bad_request", `the multipart upload cannot be read: ${message}`);
  // any other refusal of the parser is the client's form, never a 500
  if ((error as { statusCode?: number }).statusCode === 413) return new StrataError("payload_too_large", `the form is over the server's limits: ${message}`);
  return new StrataError("bad_request", `the multipart form could not be read: ${message}`, { cause: error });
}

export function buildRoutes(app: FastifyInstance, builds: Builds): void {
  route(app, routes.createBuild, async (request, reply) => {
    const { id, contextFile } = builds.reserve();
    try {
      const { fields, hasContext } = await readForm(request, contextFile);
      if (!hasContext) throw new StrataError("bad_request", "the 'context' file field is required");
      const name = fields.name;
      if (name !== undefined && !isName(name)) throw new StrataError("bad_request", `name ${describePattern(Name.pattern!)}, at most ${limits.nameChars} characters`, { details: { field: "name" } });
      if (fields.dockerfile !== undefined && fields.dockerfile.length > limits.pathChars) {
        throw new StrataError("field_too_large", `dockerfile is ${fields.dockerfile.length} characters; at most ${limits.pathChars}`, { details: { field: "dockerfile" } });
      }
      if (fields.dockerfile?.includes("\u0000")) throw new StrataError("bad_request", "dockerfile must not contain a NUL character", { details: { field: "dockerfile" } });
      const dockerfile = normalizeDockerfilePath(fields.dockerfile ?? "Dockerfile");
      const buildRequest: BuildRequest = {
        dockerfile,
        dockerfileText: await prepareContext(contextFile, dockerfile),
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
    const stream = eventStream(reply.raw);
    // the log ends with its one `done` or `error` event
    const send = (eventId: number, event: BuildLogEvent) => {
      stream.send(eventId, event.type, event);
      if (event.type !== "log") stream.end();
    };
    for (const { id: eventId, event } of backlog.events) send(eventId, event);
    if (backlog.finished || stream.ended) {
      stream.end();
      return;
    }
    let next = after + backlog.events.length;
    const unsubscribe = builds.subscribe(id, (eventId, event) => {
      if (eventId <= next) return;
      next = eventId;
      send(eventId, event);
    });
    stream.onClose(unsubscribe);
  });
}
