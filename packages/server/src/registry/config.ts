// Where snapshots are pushed: `HOST[:PORT][/NAMESPACE]`, with credentials and
// whether plain HTTP is allowed (loopback only, unless explicitly set).
import { StrataError } from "@strata/contract";
import { isLoopbackAddress } from "../loopback.js";

export interface RegistryConfig {
  /** `host[:port]` as the engine and the registry API address it. */
  host: string;
  /** Repository path prefix, possibly empty. */
  namespace: string;
  username?: string;
  password?: string;
  /** Plain HTTP. */
  insecure: boolean;
}

/**
 * Whether a registry `host[:port]` is on this machine, judged without a lookup:
 * `localhost` or a loopback IP literal. Any other name (even `127.x.example`)
 * counts as remote, so plain HTTP is never chosen for it by default.
 */
export function isLoopbackHost(host: string): boolean {
  const name = /^\[.*\]/.test(host) ? host.replace(/^\[(.*)\](?::\d+)?$/, "$1") : host.replace(/:\d+$/, "");
  return name === "localhost" || isLoopbackAddress(name);
}

export function parseRegistry(
  value: string,
  options: { username?: string; password?: string; insecure?: boolean } = {},
): RegistryConfig {
  const match = /^([A-Za-z0-9.-]+(?::\d+)?|\[[0-9a-fA-F:]+\](?::\d+)?)(?:\/([a-z0-9]+(?:[._/-][a-z0-9]+)*))?\/?$/.exec(value);
  if (!match) throw new StrataError("bad_request", `--registry must be HOST[:PORT][/NAMESPACE], got '${value}'`);
  const host = match[1]!;
  const insecure = options.insecure ?? isLoopbackHost(host);
  return { host, namespace: match[2] ?? "", username: options.username, password: options.password, insecure };
}

/** The repository for a snapshot push: `namespace/name`. */
export function repositoryPath(config: RegistryConfig, name: string): string {
  return config.namespace ? `${config.namespace}/${name}` : name;
}
