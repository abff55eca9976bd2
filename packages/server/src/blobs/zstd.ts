// zstd compression through the system's `zstd` program (installed by the
// setup script): fast, multi-threaded, and streaming with bounded memory.
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import net from "node:net";
import { Duplex, type Readable, type Writable } from "node:stream";
import { adopt, batchedInto, childOutput } from "../streams.js";

/** zstd's arguments: compress at `level` on every core, or decompress; to stdout, quietly. */
function zstdArgs(mode: "compress" | "decompress", level = 1): string[] {
  return mode === "compress" ? [`-${level}`, "-T0", "-q", "-c"] : ["-d", "-q", "-c"];
}

/** A duplex that decompresses what is written to it. */
export function unzstdStream(): Duplex {
  const child = adopt(spawn("zstd", zstdArgs("decompress"), { stdio: ["pipe", "pipe", "pipe"] }));
  let stderr = "";
  child.stderr.on("data", (data) => (stderr += data));
  const duplex = Duplex.from({ writable: batchedInto(child.stdin), readable: child.stdout });
  child.stdin.on("error", (error) => duplex.destroy(error)); // zstd gone: its exit says why, the input only breaks
  child.on("error", (error) => duplex.destroy(error));
  child.on("close", (code, signal) => {
    if (code !== 0 && !duplex.destroyed) duplex.destroy(new Error(`zstd decompress failed (${code ?? signal}): ${stderr.trim()}`));
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
  const child = adopt(spawn("zstd", zstdArgs("compress", level), { stdio: ["pipe", fd, "pipe"] }) as ChildProcessByStdio<Writable, null, Readable>);
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
  const child = spawn("zstd", zstdArgs("decompress"), { stdio: [fd, "pipe", "pipe"] }) as ChildProcessByStdio<null, Readable, Readable>;
  return childOutput(child, (code, signal, stderr) => (code === 0 ? null : new Error(`zstd decompress failed (${code ?? signal}): ${stderr}`)));
}

const pieceSize = 1024 * 1024;

/**
 * Runs zstd with its output read into one reused 1 MiB buffer, where a pipe
 * would allocate a new one per read (and a gigabyte of short-lived buffers
 * keeps the garbage collector busy): `take` gets each piece, and the buffer
 * is reused once the promise it returns settles; nothing is read meanwhile.
 * zstd writes into a unix socket made in `dir` (a socket can be read into a
 * given buffer, a child's pipe cannot). Write what to (de)compress into
 * `input`. `done` settles once zstd has exited well and its output is taken,
 * or with the first failure, `take`'s before zstd's; `stop` kills zstd.
 */
export async function zstdInto(
  mode: "compress" | "decompress", dir: string, take: (piece: Buffer) => Promise<void>, signal?: AbortSignal,
): Promise<{ input: Writable; done: Promise<void>; stop(): void }> {
  const dirFd = openSync(dir, "r");
  const server = net.createServer();
  const cleanup: (() => void)[] = [() => server.close(), () => closeSync(dirFd)];
  const close = () => {
    for (const step of cleanup.splice(0)) step();
  };
  try {
    // through the directory's descriptor: a socket path must be short, the directory's may not be
    const path = `/proc/self/fd/${dirFd}/zstd.sock`;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, resolve);
    });
    const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
    const buffer = Buffer.allocUnsafe(pieceSize);
    const reader: net.Socket = adopt(net.connect({
      path,
      onread: {
        buffer,
        callback: (length: number) => {
          take(buffer.subarray(0, length)).then(() => reader.resume(), (error: Error) => reader.destroy(error));
          return false;
        },
      },
    }));
    cleanup.push(() => reader.destroy());
    const read = new Promise<void>((resolve, reject) => {
      reader.on("end", resolve);
      reader.on("error", reject);
      reader.on("close", () => reject(new Error(`zstd's output closed early`)));
    });
    const side = await accepted;
    server.close();
    const child = adopt(spawn("zstd", zstdArgs(mode, 3), { stdio: ["pipe", side, "pipe"] }) as ChildProcessByStdio<Writable, null, Readable>);
    side.destroy();
    const stop = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    };
    cleanup.push(stop);
    let stderr = "";
    child.stderr.on("data", (data) => (stderr = (stderr + data).slice(-4000)));
    child.stdin.on("error", () => undefined); // a broken input shows in zstd's exit
    const exited = new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, killed) => (code === 0 ? resolve() : reject(new Error(`zstd ${mode} failed: ${stderr.trim() || killed || code}`))));
    });
    const aborted = new Promise<never>((_, reject) => {
      if (signal?.aborted) reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    // what reading met first (a refused piece) says more than zstd's exit after it
    const finished = Promise.all([read, exited.catch(async (error: unknown) => {
      await read;
      throw error;
    })]);
    const done = Promise.race([finished, aborted]).then(() => undefined).finally(close);
    done.catch(() => undefined); // the caller awaits it once its input is written
    return { input: child.stdin, done, stop };
  } catch (error) {
    close();
    throw error;
  }
}
