// The one place where failures become HTTP replies: thrown errors, the
// framework's own refusals (bad URLs, overlong parameters, bodies it cannot
// parse) and the HTTP parser's (malformed requests, oversized headers). Every
// one answers `{"error": {"code", "message"}}` with a code of the contract.
import type { Socket } from "node:net";
import { STATUS_CODES } from "node:http";
import { describePattern, StrataError, type ErrorCode } from "@strata/contract";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ServerConfig } from "../config.js";
import type { StreamScope } from "../streams.js";
import { ClientGone } from "./scope.js";
import { bodyLeftUnread } from "./body.js";

/** The framework's and its plugins' error codes that have a code of their own here. */
const frameworkCodes: Record<string, ErrorCode> = {
  FST_ERR_BAD_URL: "url_invalid",
  FST_ERR_MAX_PARAM_LENGTH: "uri_too_long",
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_INVALID_MULTIPART_CONTENT_TYPE: "unsupported_media_type",
};

/** Any other framework error by its status; statuses not listed are bad_request (4xx) or internal (5xx). */
const frameworkStatusCodes: Record<number, ErrorCode> = {
  400: "bad_request",
  401: "unauthorized",
  404: "route_not_found",
  408: "request_timeout",
  413: "payload_too_large",
  414: "uri_too_long",
  415: "unsupported_media_type",
  431: "headers_too_large",
};

/** Schema keywords whose failure means a field is too large rather than malformed. */
const sizeKeywords = new Set(["maxLength", "maxItems", "maxProperties"]);

/**
 * A failed schema check as a StrataError naming the field (in `details.field`):
 * a body field over its size bound is 413 `field_too_large`, anything else 400.
 */
function validationError(fastifyError: Partial<FastifyError>): StrataError {
  const first = fastifyError.validation?.[0] as AjvError | undefined;
  const context = fastifyError.validationContext ?? "body";
  const message = fastifyError.message ?? "invalid request";
  if (!first) return new StrataError("bad_request", message);
  const field = fieldOf(first, context);
  const inBody = context !== "querystring" && context !== "params" && context !== "headers";
  const code = inBody && sizeKeywords.has(first.keyword ?? "") && first.propertyName === undefined ? "field_too_large" : "bad_request";
  return new StrataError(code, message, { details: { field } });
}

function fieldOf(error: AjvError, context: string): string {
  const params = error.params ?? {};
  const base = `${context}${error.instancePath}`;
  if (error.propertyName !== undefined) return `${base}/${error.propertyName}`;
  if (typeof params.additionalProperty === "string") return `${base}/${params.additionalProperty}`;
  if (typeof params.missingProperty === "string") return `${base}/${params.missingProperty}`;
  return base;
}

/** Any thrown value as a StrataError: validation and framework errors keep their meaning. */
export function toStrataError(error: unknown): StrataError {
  if (error instanceof StrataError) return error;
  if (error instanceof ClientGone) return new StrataError("cancelled", error.message);
  const fastifyError = (error ?? {}) as Partial<FastifyError>;
  if (fastifyError.validation) return validationError(fastifyError);
  const message = fastifyError.message || "invalid request";
  const byCode = typeof fastifyError.code === "string" ? frameworkCodes[fastifyError.code] : undefined;
  if (byCode) return new StrataError(byCode, message);
  const status = fastifyError.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return new StrataError(frameworkStatusCodes[status] ?? "bad_request", message);
  }
  return new StrataError("internal", error instanceof Error ? error.message : String(error), { cause: error });
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown, config: ServerConfig): void {
  // once the client has gone, whatever failed failed because it went: nobody reads this reply, and it is no fault of ours
  const gone = (request.scope as StreamScope | null)?.signal.reason instanceof ClientGone;
  const strataError = gone ? new StrataError("cancelled", "the client closed the connection before the reply was done") : toStrataError(error);
  if (strataError.code === "internal") {
    config.log({ event: "internal_error", method: request.method, url: request.url, message: String((error as Error)?.stack ?? error) });
  }
  // a body left unread (a refused upload) is not drained: the connection closes after this reply
  if (bodyLeftUnread(request)) reply.header("connection", "close");
  void reply.status(strataError.status).type("application/json").send(strataError.toBody());
}

/**
 * What the HTTP parser refuses before there is a request (a malformed request
 * line, headers over the size limit, a request that took too long), answered
 * on the socket in the contract's shape, then closed.
 */
export function clientErrorReply(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [code, message]: [ErrorCode, string] =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? ["request_timeout", "the request took too long to arrive"]
    : error.code === "HPE_HEADER_OVERFLOW" ? ["headers_too_large", "the request's headers are larger than the server accepts"]
    : error.code === "HPE_URI_TOO_LONG" ? ["uri_too_long", "the request's URL is too long"]
    : ["bad_request", `the request is not valid HTTP (${error.code ?? error.message})`];
  const strataError = new StrataError(code, message);
  const body = JSON.stringify(strataError.toBody());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${strataError.status} ${STATUS_CODES[strataError.status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** The framework's refusals before routing (bad URL encoding, overlong parameters), in the contract's shape. */
export function frameworkErrorReply(config: ServerConfig): (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => void {
  return (error, request, reply) => {
    sendError(request, reply, error, config);
    // these replies skip the request hooks, the log line included
    config.log({ time: new Date().toISOString(), method: request.method, url: request.url, status: reply.statusCode });
  };
}

export function registerErrorHandling(app: FastifyInstance, config: ServerConfig): void {
  app.setErrorHandler((error, request, reply) => sendError(request, reply, error, config));
  app.setNotFoundHandler((request, reply) => {
    const error = new StrataError("route_not_found", `no route ${request.method} ${request.url.split("?")[0]}`);
    void reply.status(error.status).send(error.toBody());
  });
}

interface AjvError {
  instancePath: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
  /** Set when the error is about a key of a map rather than a value. */
  propertyName?: string;
}

/** Validation messages that name the field: `body/cmd must be array`, `body/env has an invalid key "A=B": ...`. */
export function formatValidation(errors: AjvError[], context: string): Error {
  const first = errors[0];
  if (!first) return new Error(`${context} is invalid`);
  const where = `${context}${first.instancePath}`;
  const params = first.params ?? {};
  const rule = typeof params.pattern === "string" ? describePattern(params.pattern) : undefined;
  const complaint = rule ?? first.message ?? "is invalid";
  if (first.propertyName !== undefined) {
    return new Error(`${where} has an invalid key ${JSON.stringify(first.propertyName)}: a key ${complaint}`);
  }
  if (rule) return new Error(`${where} ${rule}`);
  if (typeof params.additionalProperty === "string") return new Error(`${where}/${params.additionalProperty} is not a known field`);
  if (typeof params.missingProperty === "string") return new Error(`${where}/${params.missingProperty} is required`);
  if (Array.isArray(params.allowedValues)) return new Error(`${where} must be one of ${params.allowedValues.join(", ")}`);
  return new Error(`${where} ${first.message ?? "is invalid"}`);
}
