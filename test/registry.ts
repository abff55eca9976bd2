// A real OCI registry (Debian's docker-registry) on a random loopback port
// with temporary storage, started and stopped by a test.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "./harness.js";

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops, empties the storage, starts again. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** With auth, the registry takes only these credentials (htpasswd, bcrypt made by python3's crypt). */
export async function startRegistry(auth?: { username: string; password: string }): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "strata-registry-"));
  if (auth) {
    const hash = execFileSync("python3", ["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))", auth.password], { encoding: "utf8" }).trim();
    writeFileSync(join(dir, "htpasswd"), `${auth.username}:${hash}\n`);
  }
  const port = 30000 + Math.floor(Math.random() * 20000);
  const host = `127.0.0.1:${port}`;
  const config = join(dir, "config.yml");
  writeFileSync(config, [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(dir, "data")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${host}`,
    ...(auth ? ["auth:", "  htpasswd:", "    realm: strata-test", `    path: ${join(dir, "htpasswd")}`] : []),
    "",
  ].join("\n"));
  let child: ChildProcess | undefined;
  const registry: TestRegistry = {
    host,
    async start() {
      child = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
      await eventually(async () => fetch(`http://${host}/v2/`).then((r) => r.ok || r.status === 401, () => false), 15000, "registry start");
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child!.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
    async reset() {
      await registry.stop();
      rmSync(join(dir, "data"), { recursive: true, force: true });
      await registry.start();
    },
    async close() {
      await registry.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await registry.start();
  return registry;
}
