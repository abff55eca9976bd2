// Starts a real Strata server on a free port with a temporary home, against
// the machine's engine, and cleans up everything it made.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type ServerConfig, type StrataServer } from "@strata/server";
import { Strata } from "@strata/sdk";

/** The offline base image the setup script builds. */
export const baseImage = "strata-test/busybox:latest";

export interface TestServer {
  server: StrataServer;
  strata: Strata;
  home: string;
  logs: Record<string, unknown>[];
  /** Containers on the engine that belong to this server. */
  containers(): Promise<number>;
  /** Stops the server, keeping its home and containers (for restart stories). */
  stop(): Promise<void>;
  /** Starts a server again on the same home. */
  restart(options?: Partial<ServerConfig>): Promise<TestServer>;
  /** Removes every sandbox, stops the server and deletes the home. */
  close(): Promise<void>;
}

export async function startTestServer(options: Partial<ServerConfig> = {}, home?: string): Promise<TestServer> {
  const dir = home ?? mkdtempSync(join(tmpdir(), "strata-test-"));
  const logs: Record<string, unknown>[] = [];
  const server = await startServer({ port: 0, host: "127.0.0.1", home: dir, log: (line) => logs.push(line), ...options });
  const strata = new Strata({ baseUrl: server.url, apiKey: options.apiKey });
  let stopped = false;
  const self: TestServer = {
    server,
    strata,
    home: dir,
    logs,
    containers: async () => (await server.context.engine.listContainers({ "dev.strata.server": server.context.serverId })).length,
    async stop() {
      if (!stopped) await server.close();
      stopped = true;
    },
    restart: (more = {}) => startTestServer({ ...options, ...more }, dir),
    async close() {
      if (!stopped) {
        const containers = await server.context.engine.listContainers({ "dev.strata.server": server.context.serverId });
        await Promise.all(containers.map((c) => server.context.engine.removeContainer(c.id)));
        await self.stop();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** Waits until check() is true, polling; fails after timeoutMs. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 15000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The StrataError code a promise rejects with. */
export async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: string }).code ?? `not a StrataError: ${String(error)}`;
  }
  return "no error";
}
