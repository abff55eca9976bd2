// `npm run bench`: starts a Strata server as its own process, runs every
// scenario against it and against the raw engine, prints the table and writes
// bench/results/latest.json.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Strata } from "@strata/sdk";
import { benchSandboxes } from "./sandboxes.js";
import { benchSnapshots } from "./snapshots.js";
import { benchDirectories } from "./directories.js";
import { benchArchives } from "./archives.js";
import { benchBuilds } from "./builds.js";
import { benchRegistry } from "./registry.js";
import { benchMemory } from "./memory.js";
import { removeBenchLeftovers } from "./raw-engine.js";
import { mergeWithLatest, printTable, writeResults } from "./stats.js";

const image = "strata-test/busybox:latest";
const runs = Number(process.env.BENCH_RUNS ?? 20);
const root = fileURLToPath(new URL("../..", import.meta.url));

/** Every server the bench started, for the cleanup that runs however the bench ends. */
const servers: { serverId: string; close(): Promise<void> }[] = [];

/**
 * A Strata server as its own process, on a port the OS picks (read from its
 * "listening" log line), with a temp home. close() stops it, removes what it
 * left on the engine and deletes the home.
 */
async function serverProcess(extraArgs: string[] = []): Promise<{ strata: Strata; home: string; pid: number; close(): Promise<void> }> {
  const home = mkdtempSync(join(tmpdir(), "strata-bench-"));
  const child = spawn(process.execPath, [join(root, "packages/cli/bin/strata.js"), "serve", "--port", "0", "--home", home, ...extraArgs], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
    let serverId = "";
    try {
      serverId = readFileSync(join(home, "server-id"), "utf8").trim();
    } catch {
      // never got that far
    }
    if (serverId) await removeBenchLeftovers([serverId]).catch((error) => console.error(`bench cleanup: ${(error as Error).message}`));
    rmSync(home, { recursive: true, force: true });
  };
  servers.push({ get serverId() { try { return readFileSync(join(home, "server-id"), "utf8").trim(); } catch { return ""; } }, close });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error("the bench server did not start within 60 s")), 60_000);
      child.stdout!.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8");
        const match = /"event":"listening","url":"([^"]+)"/.exec(text);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the bench server exited (${code}) before listening`));
      });
    });
    child.stdout!.removeAllListeners("data");
    child.stdout!.resume();
    return { strata: new Strata({ baseUrl: url }), home, pid: child.pid!, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Stops every server the bench started and removes what the run left on the engine. */
async function cleanup(): Promise<void> {
  await Promise.allSettled(servers.map((server) => server.close()));
  await removeBenchLeftovers(servers.map((server) => server.serverId).filter(Boolean)).catch((error) => console.error(`bench cleanup: ${(error as Error).message}`));
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

/** A second server pushing to the given registry. */
const serverWithRegistry = (registry: string) => serverProcess(["--registry", registry]);

async function main(): Promise<void> {
  const server = await serverProcess();
  const strata = server.strata;
  process.env.BENCH_HOME = server.home;
  try {
    // `npm run bench -- sandboxes snapshots:1MB,100MB` picks scenarios; all by default.
    const picks = process.argv.slice(2);
    const wants = (name: string) => !picks.length || picks.some((p) => p.split(":")[0] === name);
    const sizes = picks.find((p) => p.startsWith("snapshots:"))?.slice("snapshots:".length).split(",");
    const rows = [
      ...(wants("sandboxes") ? await benchSandboxes(strata, image, runs) : []),
      ...(wants("snapshots") ? await benchSnapshots(strata, image, sizes) : []),
      ...(wants("directories") ? await benchDirectories(strata, image, server.pid) : []),
      ...(wants("archives") ? await benchArchives(strata, image, server.pid) : []),
      ...(wants("builds") ? await benchBuilds(strata, image) : []),
      ...(wants("registry") ? await benchRegistry(serverWithRegistry, image) : []),
      ...(wants("memory") ? await benchMemory(strata, image) : []),
    ];
    printTable(rows);
    // A partial run (scenarios picked) keeps the other rows of the last full run.
    const run = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      engine: (await strata.health()).engine,
    };
    const file = join(root, "bench/results/latest.json");
    writeResults(file, mergeWithLatest(file, rows, picks.length > 0, run));
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
