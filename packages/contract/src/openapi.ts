// Builds the OpenAPI 3.1 document from the route table and the named schemas.
import type { TSchema } from "@sinclair/typebox";
import { stringify } from "yaml";
import { errorStatus } from "./errors.js";
import { routes, type RawReply, type RouteSpec } from "./routes.js";
import * as schemaModule from "./schemas.js";

const statusText: Record<number, string> = {
  200: "OK", 201: "Created", 202: "Accepted", 204: "No content", 400: "Bad request", 401: "Unauthorized",
  403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Too large", 415: "Unsupported media type", 500: "Internal error", 502: "Bad gateway", 503: "Unavailable",
};

/** Serialises a schema, replacing every named schema it contains with a `$ref`. */
function toJson(schema: unknown, names: Map<unknown, string>, root?: unknown): unknown {
  if (schema !== root && names.has(schema)) return { $ref: `#/components/schemas/${names.get(schema)}` };
  if (Array.isArray(schema)) return schema.map((item) => toJson(item, names));
  if (schema && typeof schema === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(schema)) out[key] = toJson(value, names);
    return out;
  }
  return schema;
}

function isRaw(reply: TSchema | RawReply | null): reply is RawReply {
  return reply !== null && Array.isArray((reply as RawReply).raw);
}

/** The OpenAPI 3.1 document of the API, as a plain object. */
export function openApiDocument(version: string): Record<string, unknown> {
  const named = Object.entries(schemaModule).filter(([, value]) => value && typeof value === "object");
  const names = new Map<unknown, string>(named.map(([name, value]) => [value, name]));
  const components: Record<string, unknown> = {};
  for (const [name, value] of named) components[name] = toJson(value, names, value);

  const paths: Record<string, Record<string, unknown>> = {};
  const errorStatuses = [...new Set(Object.values(errorStatus))].sort();
  for (const route of Object.values(routes) as RouteSpec[]) {
    const path = route.url.replace(/:(\w+)/g, "{$1}");
    const parameters: unknown[] = [];
    const addParams = (schema: TSchema | undefined, where: "path" | "query") => {
      const properties = (schema?.properties ?? {}) as Record<string, TSchema>;
      const required = new Set<string>((schema?.required as string[] | undefined) ?? []);
      for (const [name, value] of Object.entries(properties)) {
        parameters.push({
          name, in: where, required: where === "path" || required.has(name),
          ...(value.description ? { description: value.description } : {}),
          ...(value.type === "array" ? { explode: true } : {}),
          schema: toJson(value, names),
        });
      }
    };
    addParams(route.params, "path");
    addParams(route.query, "query");

    const responses: Record<string, unknown> = {};
    for (const [status, reply] of Object.entries(route.replies)) {
      const description = statusText[Number(status)] ?? "Reply";
      if (reply === null) responses[status] = { description };
      else if (isRaw(reply)) {
        responses[status] = {
          description: reply.description,
          content: Object.fromEntries(reply.raw.map((type) => [type, { schema: { type: "string", contentMediaType: type } }])),
        };
      } else responses[status] = { description, content: { "application/json": { schema: toJson(reply, names) } } };
    }
    for (const status of errorStatuses) {
      responses[String(status)] ??= {
        description: statusText[status] ?? "Error",
        content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorReply" } } },
      };
    }

    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      ...(parameters.length ? { parameters } : {}),
      responses,
    };
    if (route.body) {
      operation.requestBody = { required: true, content: { "application/json": { schema: toJson(route.body, names) } } };
    } else if (route.rawBody) {
      operation.requestBody = {
        required: true,
        content: Object.fromEntries(route.rawBody.map((type) => [type, { schema: { type: "string", contentMediaType: type } }])),
      };
    }
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }

  return {
    openapi: "3.1.0",
    info: {
      title: "Strata",
      version,
      description: "Self-hosted sandboxes with snapshots. Errors are `{\"error\": {\"code\", \"message\"}}`; the status follows from the code.",
    },
    servers: [{ url: "http://127.0.0.1:7420" }],
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "Required when the server has an API key." } },
    },
    security: [{}, { bearer: [] }],
    paths,
  };
}

/** The OpenAPI document as YAML, exactly as committed in `spec/openapi.yaml`. */
export function openApiYaml(version: string): string {
  return stringify(openApiDocument(version), { lineWidth: 0, aliasDuplicateObjects: false });
}
