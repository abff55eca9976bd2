// Running a command in a running sandbox, buffered or streamed. The engine
// ends a command whose timeout passes, or whose client went away, with
// everything it started; output is UTF-8 text (invalid bytes become U+FFFD)
// or, on request, base64 of the exact bytes.
import { StringDecoder } from "node:string_decoder";
import { StrataError, type ExecEvent, type ExecRequest, type ExecResult } from "@strata/contract";
import type { Context } from "../context.js";
import type { ExecSpec } from "../engine/engine.js";
import { engineError, engineRefused } from "../engine/errors.js";
import { findSandbox, runningSandbox } from "./lifecycle.js";
import { parseSandboxPath, pathError, resolveSandboxPath } from "./sandbox-path.js";

/**
 * The container to exec in. The engine itself refuses exec in a container that
 * is not running, so exec costs no extra inspect round trip.
 */
function execTarget(ctx: Context, idOrName: string): string {
  const row = findSandbox(ctx, idOrName);
  if (row.phase === "creating" || !row.containerId) {
    throw new StrataError("sandbox_not_running", `sandbox '${idOrName}' is still being created`);
  }
  return row.containerId;
}

function execError(error: unknown, idOrName: string): StrataError {
  if (engineRefused(error, 409, 404)) {
    return new StrataError("sandbox_not_running", `sandbox '${idOrName}' is not running (${(error as Error).message})`);
  }
  return engineError(error, "exec");
}

/**
 * Refuses a `cwd` that is not a directory in the sandbox (404 path_not_found,
 * 400 bad_request for a file) before the runtime would fail the exec with its
 * own message as the command's output. One engine stat, only when a cwd is given.
 */
async function checkCwd(ctx: Context, containerId: string, cwd: string | undefined): Promise<void> {
  if (cwd === undefined) return;
  const target = await resolveSandboxPath(ctx.engine, containerId, cwd, "body/cwd").catch((error) => {
    throw pathError(error, cwd) ?? engineError(error, "exec");
  });
  if (target.missing.length) throw new StrataError("path_not_found", `body/cwd '${cwd}' does not exist in the sandbox`, { details: { field: "body/cwd" } });
  if (!target.stat.isDirectory) throw new StrataError("bad_request", `body/cwd '${cwd}' is not a directory`, { details: { field: "body/cwd" } });
}

/** What the engine runs for a request: its env as `KEY=value` entries. */
function execSpec(request: ExecRequest): ExecSpec {
  const env = request.env ? Object.entries(request.env).map(([key, value]) => `${key}=${value}`) : undefined;
  return { cmd: request.cmd, env, cwd: request.cwd, stdin: request.stdin, timeoutMs: request.timeoutMs };
}

/**
 * Runs the command to its end and returns its output, each stream cut at the
 * configured limit (maxExecOutputBytes, counted in bytes before encoding).
 * Throws sandbox_not_running when the sandbox is not running.
 */
export async function execBuffered(ctx: Context, idOrName: string, request: ExecRequest, signal?: AbortSignal): Promise<ExecResult> {
  if (request.cwd !== undefined) parseSandboxPath(request.cwd, "body/cwd"); // a cwd that names no directory is a 400, never another one
  const containerId = execTarget(ctx, idOrName);
  await checkCwd(ctx, containerId, request.cwd);
  const limit = ctx.config.maxExecOutputBytes;
  const output = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const sizes = { stdout: 0, stderr: 0 };
  let truncated = false;
  const started = performance.now();
  const outcome = await ctx.engine
    .exec(
      containerId,
      execSpec(request),
      {
        signal,
        onOutput(kind, data) {
          const room = limit - sizes[kind];
          if (data.length > room) truncated = true;
          if (room <= 0) return;
          const piece = data.length > room ? data.subarray(0, room) : data;
          output[kind].push(Buffer.from(piece));
          sizes[kind] += piece.length;
        },
      },
    )
    .catch((error) => {
      throw execError(error, idOrName);
    });
  const encoding = request.encoding ?? "utf8";
  return {
    exitCode: outcome.exitCode,
    stdout: Buffer.concat(output.stdout).toString(encoding),
    stderr: Buffer.concat(output.stderr).toString(encoding),
    timedOut: outcome.timedOut,
    killed: outcome.killed,
    truncated,
    durationMs: Math.round((performance.now() - started) * 1000) / 1000,
  };
}

/**
 * Runs the command and hands each piece of output to `emit` as it arrives,
 * ending with an `exit` event. Checks the sandbox before the first event so a
 * wrong state is still an ordinary error reply. In base64 encoding each
 * event's data is the base64 of that piece's bytes, decodable on its own; in
 * utf8 a character split between pieces is kept whole.
 */
export async function execStreaming(
  ctx: Context,
  idOrName: string,
  request: ExecRequest,
  signal: AbortSignal,
): Promise<(emit: (event: ExecEvent) => void) => Promise<void>> {
  if (request.cwd !== undefined) parseSandboxPath(request.cwd, "body/cwd");
  const { containerId } = await runningSandbox(ctx, idOrName);
  await checkCwd(ctx, containerId, request.cwd);
  return async (emit) => {
    const base64 = request.encoding === "base64";
    const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
    const started = performance.now();
    const outcome = await ctx.engine
      .exec(
        containerId,
        execSpec(request),
        {
          signal,
          onOutput(kind, data) {
            const text = base64 ? data.toString("base64") : decoders[kind].write(data);
            if (text) emit({ type: kind, data: text });
          },
        },
      )
      .catch((error) => {
        throw execError(error, idOrName);
      });
    for (const kind of ["stdout", "stderr"] as const) {
      const rest = base64 ? "" : decoders[kind].end();
      if (rest) emit({ type: kind, data: rest });
    }
    emit({
      type: "exit", exitCode: outcome.exitCode, timedOut: outcome.timedOut, killed: outcome.killed,
      durationMs: Math.round(performance.now() - started),
    });
  };
}
