// zstd compression through the system's `zstd` program (installed by the
// setup script): fast, multi-threaded, and streaming with bounded memory.
import { spawn } from "node:child_process";
import { Duplex } from "node:stream";

/** A duplex that compresses (or decompresses) what is written to it. */
export function zstdStream(mode: "compress" | "decompress", level = 1): Duplex {
  const args = mode === "compress" ? [`-${level}`, "-T0", "-q", "-c"] : ["-d", "-q", "-c"];
  const child = spawn("zstd", args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (data) => (stderr += data));
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on("error", (error) => duplex.destroy(error));
  child.on("close", (code, signal) => {
    if (code !== 0 && !duplex.destroyed) duplex.destroy(new Error(`zstd ${mode} failed (${code ?? signal}): ${stderr.trim()}`));
  });
  duplex.on("close", () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return duplex;
}
