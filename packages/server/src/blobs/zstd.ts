// zstd compression through the system's `zstd` program (installed by the
// setup script): fast, multi-threaded, and streaming with bounded memory.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { Duplex, type Readable, type Writable } from "node:stream";
import { batchedInto, childOutput } from "../streams.js";

/** A duplex that compresses (or decompresses) what is written to it. */
export function zstdStream(mode: "compress" | "decompress", level = 1): Duplex {
  const args = mode === "compress" ? [`-${level}`, "-T0", "-q", "-c"] : ["-d", "-q", "-c"];
  const child = spawn("zstd", args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (data) => (stderr += data));
  const duplex = Duplex.from({ writable: batchedInto(child.stdin), readable: child.stdout });
  child.on("error", (error) => duplex.destroy(error));
  child.on("close", (code, signal) => {
    if (code !== 0 && !duplex.destroyed) duplex.destroy(new Error(`zstd ${mode} failed (${code ?? signal}): ${stderr.trim()}`));
  });
  duplex.on("close", () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return duplex;
}

/**
 * Compresses what is written to `input` straight into an open file, so the
 * compressed bytes never pass through this process. `done` settles when zstd
 * has exited; `stop` kills it.
 */
export function compressToFile(fd: number, level = 1): { input: Writable; done: Promise<void>; stop(): void } {
  const child = spawn("zstd", [`-${level}`, "-T0", "-q", "-c"], { stdio: ["pipe", fd, "pipe"] }) as ChildProcessByStdio<Writable, null, Readable>;
  let stderr = "";
  child.stderr.on("data", (data) => (stderr += data));
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => (code === 0 ? resolve() : reject(new Error(`zstd compress failed (${code ?? signal}): ${stderr.trim()}`))));
  });
  // a failed zstd is reported through done; its stdin only breaks
  child.stdin.on("error", () => undefined);
  return { input: child.stdin, done, stop: () => child.exitCode === null && child.kill("SIGKILL") };
}

/**
 * Decompresses an open file with zstd reading it directly, so the compressed
 * bytes never pass through this process. The stream fails unless zstd exits 0.
 */
export function decompressFromFile(fd: number): Readable {
  const child = spawn("zstd", ["-d", "-q", "-c"], { stdio: [fd, "pipe", "pipe"] }) as ChildProcessByStdio<null, Readable, Readable>;
  return childOutput(child, (code, signal, stderr) => (code === 0 ? null : new Error(`zstd decompress failed (${code ?? signal}): ${stderr}`)));
}
