// The composition root: builds a server from its config (engine, index,
// services, routes) and starts it. Nothing else creates these parts.
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { writeFileDurable } from "./store/durable.js";
import { join } from "node:path";
import { apiVersion, limits, StrataError } from "@strata/contract";
import { Ajv } from "ajv";
import Fastify, { type FastifyInstance, type FastifySchemaCompiler } from "fastify";
import { resolveConfig, type ServerConfig } from "./config.js";
import { resolvesToLoopback } from "./loopback.js";
import type { Context } from "./context.js";
import { DockerEngine } from "./engine/docker-engine.js";
import type { Engine } from "./engine/engine.js";
import { registerAuth } from "./http/auth.js";
import { clientErrorReply, formatValidation, frameworkErrorReply, registerErrorHandling } from "./http/errors.js";
import { route } from "./http/route.js";
import { registerStreamScopes } from "./http/scope.js";
import { fileRoutes } from "./http/routes/files.js";
import { sandboxRoutes } from "./http/routes/sandboxes.js";
import { snapshotRoutes } from "./http/routes/snapshots.js";
import { Idempotency } from "./http/idempotency.js";
import multipart from "@fastify/multipart";
import { Builds } from "./builds/builds.js";
import { buildRoutes, maxFormFields } from "./http/routes/builds.js";
import { Jobs } from "./jobs.js";
import { recoverSnapshots } from "./snapshots/recover.js";
import { SnapshotStore } from "./snapshots/store.js";
import { StagingBudget } from "./snapshots/staging.js";
import { BlobStore } from "./blobs/store.js";
import { RegistryClient } from "./registry/client.js";
import { routes } from "@strata/contract";
import { Index } from "./index/database.js";
import { startExpiry, type Expiry } from "./sandboxes/expiry.js";
import { recoverSandboxes } from "./sandboxes/recover.js";

export interface StrataServer {
  /** Base URL the server listens on, e.g. `http://127.0.0.1:7420`. */
  readonly url: string;
  readonly config: ServerConfig;
  readonly context: Context;
  readonly expiry: Expiry;
  close(): Promise<void>;
}

/** This server's identity on the engine, kept in the home so a restart finds its containers. */
function serverId(home: string): string {
  const file = join(home, "server-id");
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    const id = randomUUID();
    writeFileDurable(file, `${id}\n`);
    return id;
  }
}

async function buildHttp(ctx: Context, builds: Builds): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: limits.jsonBodyBytes,
    forceCloseConnections: true,
    schemaErrorFormatter: (errors, context) => formatValidation(errors, context),
    // the framework's and the HTTP parser's own refusals answer in the contract's shape too (http/errors.ts)
    frameworkErrors: frameworkErrorReply(ctx.config),
    clientErrorHandler: clientErrorReply,
  });
  // Bodies are validated strictly; query strings and paths arrive as text, so
  // their numbers and repeated keys are coerced to the schema's types.
  const strict = new Ajv({ strict: false, allErrors: false, coerceTypes: false, removeAdditional: false });
  const coercing = new Ajv({ strict: false, allErrors: false, coerceTypes: "array", removeAdditional: false });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === "body" ? strict : coercing).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>,
  );
  app.addHook("onResponse", async (request, reply) => {
    ctx.config.log({
      time: new Date().toISOString(),
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
    });
  });
  registerErrorHandling(app, ctx.config);
  registerStreamScopes(app, ctx.config);
  // JSON or the raw types below, nothing else: a text body is a 415, not a string that fails validation.
  app.removeContentTypeParser("text/plain");
  // Raw bodies (file uploads, archives) reach the services as streams; they enforce their own limits.
  app.addContentTypeParser(["application/octet-stream", "application/x-tar", "application/zstd"], (_request, payload, done) => done(null, payload));
  registerAuth(app, ctx.config.apiKey);
  route(app, routes.health, async () => ({ ok: true, version: apiVersion, engine: await ctx.engine.version() }));
  const idempotency = new Idempotency(ctx.index);
  sandboxRoutes(app, ctx, idempotency);
  fileRoutes(app, ctx);
  snapshotRoutes(app, ctx, idempotency);
  // multipart for the build routes only: a form sent to any other route is a 415, as any type it does not take
  await app.register(async (buildScope) => {
    await buildScope.register(multipart, { limits: { fileSize: ctx.config.maxContextBytes, files: 1, fields: maxFormFields + 1, fieldSize: 1024 * 1024 } });
    buildRoutes(buildScope, builds);
  });
  return app;
}

/** Starts a server: checks the config and engine, recovers state, listens. */
export async function startServer(options: Partial<ServerConfig> = {}, engineOverride?: Engine): Promise<StrataServer> {
  const config = resolveConfig(options);
  if (!config.apiKey && !(await resolvesToLoopback(config.host))) {
    throw new StrataError("bad_request", `refusing to listen on ${config.host} without an API key: it is not a loopback address, or a name that resolves only to loopback addresses (set --api-key or STRATA_API_KEY)`);
  }
  mkdirSync(config.home, { recursive: true, mode: 0o700 });
  const engine = engineOverride ?? new DockerEngine(config.dockerHost);
  try {
    await engine.version();
  } catch (error) {
    engine.close();
    throw new StrataError("engine_unavailable", `no container engine answers at ${config.dockerHost}: ${(error as Error).message}`);
  }
  const index = new Index(config.home);
  const context: Context = {
    config, engine, index, serverId: serverId(config.home), snapshots: new SnapshotStore(config.home),
    blobs: new BlobStore(config.home), jobs: new Jobs(), staging: new StagingBudget(config.maxStagingBytes),
    ...(config.registry ? { registry: new RegistryClient(config.registry) } : {}),
  };
  await recoverSnapshots(context);
  await recoverSandboxes(context);
  const expiry = startExpiry(context);
  const builds = new Builds(context, config.maxConcurrentBuilds);
  void builds.recover(); // in the background: the engine may still be ending the killed build's step
  const app = await buildHttp(context, builds);
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await app.close().catch(() => undefined);
    expiry.stop();
    index.close();
    engine.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  return {
    url: `http://${host}:${port}`,
    config,
    context,
    expiry,
    async close() {
      expiry.stop();
      await app.close();
      await builds.drain();
      await context.jobs.drain();
      index.close();
      engine.close();
    },
  };
}
