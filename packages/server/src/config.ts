// The server's configuration: options, environment and embedded defaults.
import { homedir } from "node:os";
import { resolve } from "node:path";
import { parseRegistry, type RegistryConfig } from "./registry/config.js";

export interface ServerConfig {
  port: number;
  host: string;
  /** Where the index and data live. */
  home: string;
  /** Docker Engine API endpoint: `unix:///path` or `tcp://host:port`. */
  dockerHost: string;
  /** When set, every request needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest upload body accepted by the files endpoint. */
  maxUploadBytes: number;
  /** Largest directory snapshot (uncompressed archive bytes). */
  maxSnapshotBytes: number;
  /**
   * Bytes all imports at once may stage: blobs under the home and image
   * members streamed into the engine's load. An import past it fails with
   * insufficient_storage (507).
   */
  maxStagingBytes: number;
  /** Largest stdout or stderr kept by a buffered exec; the rest is cut. */
  maxExecOutputBytes: number;
  /** How often expired sandboxes are looked for. */
  expirySweepMs: number;
  /** Builds run at once; the rest wait in a queue. */
  maxConcurrentBuilds: number;
  /** Largest build context accepted. */
  maxContextBytes: number;
  /** Where snapshots are pushed; none by default. */
  registry?: RegistryConfig;
  /** Push every snapshot to the registry when it turns ready. */
  autoPush: boolean;
  /**
   * The weakest isolation a sandbox may run under. Sandboxes whose request
   * leaves isolation unset (and whose snapshot recorded a weaker one) get this
   * one; a request that names a weaker one is refused with
   * `isolation_below_minimum` (403). Default `runc`: no floor.
   */
  minIsolation: "runc" | "gvisor";
  /** Where request and event logs go; one JSON object per line. */
  log: (line: Record<string, unknown>) => void;
}

export const defaultPort = 7420;

function defaultHome(): string {
  return process.env.STRATA_HOME ? resolve(process.env.STRATA_HOME) : resolve(homedir(), ".strata");
}

/**
 * The registry options the environment sets (`STRATA_REGISTRY_USER`,
 * `STRATA_REGISTRY_PASSWORD`, `STRATA_REGISTRY_INSECURE=1|true|0|false`),
 * whether the registry itself comes from the environment or a command line.
 */
export function registryOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): { username?: string; password?: string; insecure?: boolean } {
  const insecure = env.STRATA_REGISTRY_INSECURE;
  return {
    ...(env.STRATA_REGISTRY_USER ? { username: env.STRATA_REGISTRY_USER } : {}),
    ...(env.STRATA_REGISTRY_PASSWORD ? { password: env.STRATA_REGISTRY_PASSWORD } : {}),
    ...(insecure ? { insecure: insecure === "1" || insecure === "true" } : {}),
  };
}

/** Embedded defaults, overridden by the environment, overridden by `options`. */
export function resolveConfig(options: Partial<ServerConfig> = {}): ServerConfig {
  const env = process.env;
  return {
    port: options.port ?? (env.STRATA_PORT ? Number(env.STRATA_PORT) : defaultPort),
    host: options.host ?? env.STRATA_HOST ?? "127.0.0.1",
    home: options.home ? resolve(options.home) : defaultHome(),
    dockerHost: options.dockerHost ?? env.DOCKER_HOST ?? "unix:///var/run/docker.sock",
    apiKey: options.apiKey ?? (env.STRATA_API_KEY || undefined),
    maxUploadBytes: options.maxUploadBytes ?? (env.STRATA_MAX_UPLOAD_BYTES ? Number(env.STRATA_MAX_UPLOAD_BYTES) : 1024 ** 3),
    maxSnapshotBytes: options.maxSnapshotBytes ?? (env.STRATA_MAX_SNAPSHOT_BYTES ? Number(env.STRATA_MAX_SNAPSHOT_BYTES) : 64 * 1024 ** 3),
    maxStagingBytes: options.maxStagingBytes ?? (env.STRATA_MAX_STAGING_BYTES ? Number(env.STRATA_MAX_STAGING_BYTES) : 128 * 1024 ** 3),
    maxExecOutputBytes: options.maxExecOutputBytes ?? 16 * 1024 * 1024,
    expirySweepMs: options.expirySweepMs ?? 1000,
    maxConcurrentBuilds: options.maxConcurrentBuilds ?? (env.STRATA_MAX_BUILDS ? Number(env.STRATA_MAX_BUILDS) : 2),
    maxContextBytes: options.maxContextBytes ?? (env.STRATA_MAX_CONTEXT_BYTES ? Number(env.STRATA_MAX_CONTEXT_BYTES) : 2 * 1024 ** 3),
    registry: options.registry ?? (env.STRATA_REGISTRY ? parseRegistry(env.STRATA_REGISTRY, registryOptionsFromEnv(env)) : undefined),
    autoPush: options.autoPush ?? (env.STRATA_AUTO_PUSH === "1" || env.STRATA_AUTO_PUSH === "true"),
    minIsolation: parseIsolation(options.minIsolation ?? env.STRATA_MIN_ISOLATION ?? "runc", "the minimum isolation (--min-isolation, STRATA_MIN_ISOLATION)"),
    log: options.log ?? ((line) => process.stdout.write(`${JSON.stringify(line)}\n`)),
  };
}

/** `runc` or `gvisor`; throws naming the option for anything else. */
export function parseIsolation(value: string, what: string): "runc" | "gvisor" {
  if (value === "runc" || value === "gvisor") return value;
  throw new Error(`${what} must be runc or gvisor, got '${value}'`);
}
