// The one place where failures become HTTP replies.
import { describePattern, StrataError, type ErrorCode } from "@strata/contract";
import type { FastifyError, FastifyInstance } from "fastify";
import type { ServerConfig } from "../config.js";

const fastifyStatusCodes: Record<number, ErrorCode> = {
  400: "bad_request",
  401: "unauthorized",
  404: "route_not_found",
  413: "payload_too_large",
  415: "unsupported_media_type",
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
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) return validationError(fastifyError);
  const code = fastifyError.statusCode ? fastifyStatusCodes[fastifyError.statusCode] : undefined;
  if (code) return new StrataError(code, fastifyError.message ?? code);
  return new StrataError("internal", error instanceof Error ? error.message : String(error), { cause: error });
}

export function registerErrorHandling(app: FastifyInstance, config: ServerConfig): void {
  app.setErrorHandler((error, request, reply) => {
    const strataError = toStrataError(error);
    if (strataError.code === "internal") {
      config.log({ event: "internal_error", method: request.method, url: request.url, message: String((error as Error)?.stack ?? error) });
    }
    void reply.status(strataError.status).type("application/json").send(strataError.toBody());
  });
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
