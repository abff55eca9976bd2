// `npm run bench`: starts a Strata server as its own process, runs every
// scenario against it and against the raw engine, prints the table and writes
// bench/results/latest.json.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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
import { mergeWithLatest, printTable, writeResults } from "./stats.js";

const image = "strata-test/busybox:latest";
const runs = Number(process.env.BENCH_RUNS ?? 20);
const root = fileURLToPath(new URL("../..", import.meta.url));

/** A Strata server as its own process, on a random port with a temp home, once it answers. */
async function serverProcess(extraArgs: string[] = []): Promise<{ strata: Strata; home: string; pid: number; close(): Promise<void> }> {
  const home = mkdtempSync(join(tmpdir(), "strata-bench-"));
  const port = 7600 + Math.floor(Math.random() * 390);
  const child = spawn(process.execPath, [join(root, "packages/cli/bin/strata.js"), "serve", "--port", String(port), "--home", home, ...extraArgs], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const strata = new Strata({ baseUrl: `http://127.0.0.1:${port}` });
  const close = async () => {
    child.kill("SIGTERM");
    if (child.exitCode === null) await new Promise((resolve) => child.once("exit", resolve));
    rmSync(home, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    try {
      await strata.health();
      break;
    } catch (error) {
      if (i > 100) {
        await close();
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { strata, home, pid: child.pid!, close };
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
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
