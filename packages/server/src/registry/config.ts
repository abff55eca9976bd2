// Where snapshots are pushed: `HOST[:PORT][/NAMESPACE]`, with credentials and
// whether plain HTTP is allowed (loopback only, unless explicitly set).
import { StrataError } from "@strata/contract";

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

export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return name === "localhost" || name === "::1" || /^127\./.test(name);
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
