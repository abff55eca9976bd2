// A real OCI registry (Debian's docker-registry) on a loopback port the OS
// picks, with temporary storage, started and stopped by a test. Restarts keep
// the port (a test that stops it and starts it again talks to the same host).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { bounded } from "./harness.js";

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops, empties the storage, starts again. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Every registry process this test process started and has not stopped: killed on exit whatever happened. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts the registry on `addr` (port 0 the first time) and resolves to the
 * address it listens on, read from its own log. Fails with the registry's
 * output when it exits or does not listen within a minute.
 */
async function serve(config: string): Promise<{ child: ChildProcess; host: string }> {
  const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let output = "";
  try {
    const host = await bounded(new Promise<string>((resolve, reject) => {
      child.stderr!.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
        const match = /msg="listening on (127\.0\.0\.1:\d+)"/.exec(output);
        if (match) resolve(match[1]!);
      });
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`docker-registry exited (${code}): ${output.slice(-2000)}`)));
    }), 60_000, "registry start");
    // keep draining its log so it never blocks on a full pipe
    child.stderr!.removeAllListeners("data");
    child.stderr!.resume();
    return { child, host };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

/** With auth, the registry takes only these credentials (htpasswd with a bcrypt hash). */
export async function startRegistry(auth?: { username: string; password: string }): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "strata-registry-"));
  if (auth) writeFileSync(join(dir, "htpasswd"), `${auth.username}:${bcrypt.hashSync(auth.password, 10)}\n`);
  const config = join(dir, "config.yml");
  const writeConfig = (addr: string) => writeFileSync(config, [
    "version: 0.1",
    "log:",
    "  level: info",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "data")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${addr}`,
    ...(auth ? ["auth:", "  htpasswd:", "    realm: strata-test", `    path: ${join(dir, "htpasswd")}`] : []),
    "",
  ].join("\n"));
  writeConfig("127.0.0.1:0");
  let child: ChildProcess | undefined;
  let host: string;
  try {
    ({ child, host } = await serve(config));
    // restarts listen where the first start did
    writeConfig(host);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const registry: TestRegistry = {
    host,
    async start() {
      if (child && child.exitCode === null && child.signalCode === null) return;
      ({ child } = await serve(config));
    },
    async stop() {
      const current = child;
      if (!current || current.exitCode !== null || current.signalCode !== null) return;
      const exited = new Promise((resolve) => current.once("exit", resolve));
      current.kill("SIGTERM");
      try {
        await bounded(exited, 15_000, "registry stop");
      } catch {
        current.kill("SIGKILL");
        await exited;
      }
    },
    async reset() {
      await registry.stop();
      rmSync(join(dir, "data"), { recursive: true, force: true });
      await registry.start();
    },
    async close() {
      try {
        await registry.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return registry;
}
