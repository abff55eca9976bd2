// `strata serve`: runs the HTTP server in the foreground.
import { parseIsolation, parseRegistry, registryOptionsFromEnv, startServer, type RegistryConfig } from "@strata/server";
import { number, parseArgs, usage } from "../options.js";

export const serveHelp = `Usage: strata serve [options]

Starts the Strata server on this machine's container engine.

Options:
  --port N            port (env STRATA_PORT, default 7420)
  --host HOST         address to bind (env STRATA_HOST, default 127.0.0.1)
  --home DIR          index and data (env STRATA_HOME, default ~/.strata)
  --docker-host URL   engine endpoint (env DOCKER_HOST, default unix:///var/run/docker.sock)
  --api-key KEY       require 'Authorization: Bearer KEY' (env STRATA_API_KEY);
                      needed to bind a non-loopback host
  --max-upload-bytes N  largest file upload accepted (env STRATA_MAX_UPLOAD_BYTES, default 1 GiB)
  --max-snapshot-bytes N  largest directory snapshot (env STRATA_MAX_SNAPSHOT_BYTES, default 64 GiB)
  --max-staging-bytes N  bytes all imports at once may stage (env STRATA_MAX_STAGING_BYTES, default 128 GiB)
  --registry HOST[:PORT][/NAMESPACE]  where snapshots are pushed (env STRATA_REGISTRY)
  --registry-user U / --registry-password P  credentials (env STRATA_REGISTRY_USER, STRATA_REGISTRY_PASSWORD)
  --registry-insecure   plain HTTP to a non-loopback registry (env STRATA_REGISTRY_INSECURE=1;
                      loopback registries use HTTP already)
  --auto-push           push every snapshot when it turns ready (env STRATA_AUTO_PUSH=1)
  --min-isolation runc|gvisor  weakest isolation a sandbox may run under (env STRATA_MIN_ISOLATION,
                      default runc); unset requests get it, requests naming a weaker one get 403
`;

/**
 * The registry `--registry` names, with its options from the flags, else from
 * the environment (`STRATA_REGISTRY_USER`, `STRATA_REGISTRY_PASSWORD`,
 * `STRATA_REGISTRY_INSECURE`); undefined without `--registry` (the server then
 * reads `STRATA_REGISTRY`).
 */
export function registryOption(
  values: { registry?: string; "registry-user"?: string; "registry-password"?: string; "registry-insecure"?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): RegistryConfig | undefined {
  if (!values.registry) return undefined;
  return parseRegistry(values.registry, {
    ...registryOptionsFromEnv(env),
    ...(values["registry-user"] !== undefined ? { username: values["registry-user"] } : {}),
    ...(values["registry-password"] !== undefined ? { password: values["registry-password"] } : {}),
    ...(values["registry-insecure"] ? { insecure: true } : {}),
  });
}

export async function serve(args: string[]): Promise<number> {
  const { values } = usage(() => parseArgs({ args: args, allowPositionals: true, options: {
    port: { type: "string" },
    host: { type: "string" },
    home: { type: "string" },
    "docker-host": { type: "string" },
    "api-key": { type: "string" },
    "max-upload-bytes": { type: "string" },
    "max-snapshot-bytes": { type: "string" },
    "max-staging-bytes": { type: "string" },
    registry: { type: "string" },
    "registry-user": { type: "string" },
    "registry-password": { type: "string" },
    "registry-insecure": { type: "boolean" },
    "auto-push": { type: "boolean" },
    "min-isolation": { type: "string" },
    help: { type: "boolean", short: "h" },
  } }));
  if (values.help) {
    process.stdout.write(serveHelp);
    return 0;
  }
  const server = await startServer({
    port: number(values.port, "--port"),
    host: values.host,
    home: values.home,
    dockerHost: values["docker-host"],
    apiKey: values["api-key"],
    maxUploadBytes: number(values["max-upload-bytes"], "--max-upload-bytes"),
    maxSnapshotBytes: number(values["max-snapshot-bytes"], "--max-snapshot-bytes"),
    maxStagingBytes: number(values["max-staging-bytes"], "--max-staging-bytes"),
    registry: registryOption(values),
    autoPush: values["auto-push"] ? true : undefined,
    minIsolation: values["min-isolation"] === undefined ? undefined : usage(() => parseIsolation(values["min-isolation"]!, "--min-isolation")),
  });
  server.config.log({ event: "listening", url: server.url, home: server.config.home, engine: server.config.dockerHost });
  // A background failure nobody awaited is logged, not fatal: the server keeps serving.
  process.on("unhandledRejection", (error) => {
    server.config.log({ event: "unhandled_rejection", message: String((error as Error)?.stack ?? error) });
  });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await server.close();
  return 0;
}
