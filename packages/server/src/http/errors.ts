// The one place where failures become HTTP replies.
import { StrataError, type ErrorCode } from "@strata/contract";
import type { FastifyError, FastifyInstance } from "fastify";
import type { ServerConfig } from "../config.js";

const fastifyStatusCodes: Record<number, ErrorCode> = {
  400: "bad_request",
  401: "unauthorized",
  404: "route_not_found",
  413: "payload_too_large",
  415: "unsupported_media_type",
};

/** Any thrown value as a StrataError: validation and framework errors keep their meaning. */
export function toStrataError(error: unknown): StrataError {
  if (error instanceof StrataError) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) return new StrataError("bad_request", fastifyError.message ?? "invalid request");
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
  message?: string;
  params?: Record<string, unknown>;
}

/** Validation messages that name the field: `body/cmd must be array`. */
export function formatValidation(errors: AjvError[], context: string): Error {
  const first = errors[0];
  if (!first) return new Error(`${context} is invalid`);
  const where = `${context}${first.instancePath}`;
  const params = first.params ?? {};
  if (typeof params.additionalProperty === "string") return new Error(`${where}/${params.additionalProperty} is not a known field`);
  if (typeof params.missingProperty === "string") return new Error(`${where}/${params.missingProperty} is required`);
  if (Array.isArray(params.allowedValues)) return new Error(`${where} must be one of ${params.allowedValues.join(", ")}`);
  return new Error(`${where} ${first.message ?? "is invalid"}`);
}
