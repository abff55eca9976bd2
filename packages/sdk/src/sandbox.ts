// A sandbox as SDK users hold it: its last known state plus the operations on it.
import type { ExecEvent, ExecResult, ForkReply, Sandbox as SandboxInfo, Snapshot as SnapshotInfo, UploadResult } from "@strata/contract";
import { Snapshot } from "./snapshot.js";
import { jsonLines } from "./lines.js";
import { StrataError } from "@strata/contract";
import type { Body, CallOptions, Http } from "./http.js";

/** Options of `Sandbox.exec` and `Sandbox.execStream`. */
export interface ExecOptions extends CallOptions {
  /** Working directory inside the sandbox (absolute); default the image's WORKDIR. */
  cwd?: string;
  /** Environment added for this command, over the sandbox's own. */
  env?: Record<string, string>;
  /**
   * Milliseconds after which the command is killed, with every process it
   * started (its session, its process group and their descendants): nothing
   * more of it runs. The result then has `timedOut: true`, `killed: true` and
   * `exitCode: 137`. Unset: no limit.
   */
  timeoutMs?: number;
  /** Written to the command's standard input, which is then closed. Unset: no stdin. */
  stdin?: string;
  /**
   * How output bytes become strings. `"utf8"` (default): decoded as UTF-8,
   * each invalid byte sequence replaced by U+FFFD, so binary output is lost.
   * `"base64"`: the exact bytes, base64-encoded (`Buffer.from(s, "base64")`);
   * in `execStream` each callback's piece decodes on its own.
   */
  encoding?: "utf8" | "base64";
}

/** Options of `Sandbox.execStream`: those of `exec`, and where the output goes as it arrives. */
export interface ExecStreamOptions extends ExecOptions {
  /** Each piece of standard output, in the chosen encoding (pieces split anywhere, but never inside a UTF-8 character). */
  onStdout?: (data: string) => void;
  /** Each piece of standard error, as for onStdout. */
  onStderr?: (data: string) => void;
}

/** How a streamed command ended. */
export interface ExecOutcome {
  /** The command's exit code; 137 when it was killed; -1 when the server could not learn it. */
  exitCode: number;
  /** The timeout passed before the command ended. */
  timedOut: boolean;
  /**
   * The exec ended before the command ended by itself: the timeout (or an
   * abort) killed it, or the sandbox stopped (`exitCode` 137) or was
   * checkpointed by a memory snapshot (`exitCode` -1) under it.
   */
  killed: boolean;
  /** Milliseconds from the start of the command to its end, measured by the server. */
  durationMs: number;
}

export interface SnapshotOptions extends CallOptions {
  /** container (default): the whole filesystem; memory: a gVisor checkpoint of the running processes too. */
  kind?: "container" | "memory";
  name?: string;
  labels?: Record<string, string>;
  /** A retry with the same key returns the first snapshot instead of making another. */
  idempotencyKey?: string;
}

/** A string command runs through `/bin/sh -c`; an array runs as is. */
function argv(cmd: string | string[]): string[] {
  return typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd;
}

/** Files inside a running sandbox. */
export class SandboxFiles {
  constructor(private readonly http: Http, private readonly id: string) {}

  /** A file's bytes (or, for a directory, a tar of it) as a stream. */
  async stream(path: string, options: CallOptions = {}): Promise<{ contentType: string; body: ReadableStream<Uint8Array> }> {
    const response = await this.http.send({ method: "GET", path: `/v1/sandboxes/${this.id}/files`, query: { path }, signal: options.signal });
    return { contentType: response.headers.get("content-type") ?? "", body: response.body! };
  }

  /** A file's bytes. */
  async read(path: string, options: CallOptions = {}): Promise<Uint8Array> {
    const response = await this.http.send({ method: "GET", path: `/v1/sandboxes/${this.id}/files`, query: { path }, signal: options.signal });
    return new Uint8Array(await response.arrayBuffer());
  }

  /** A file's content decoded as UTF-8. */
  async readText(path: string, options: CallOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, options));
  }

  /** Writes a file, making its parent directories; the data may be a stream. */
  async write(path: string, data: string | Uint8Array | ReadableStream<Uint8Array>, options: CallOptions = {}): Promise<UploadResult> {
    return this.http.json<UploadResult>({
      method: "PUT", path: `/v1/sandboxes/${this.id}/files`, query: { path },
      body: data as Body, contentType: "application/octet-stream", signal: options.signal,
    });
  }

  /** Extracts a tar archive into the directory at path. */
  async writeTar(path: string, tar: Uint8Array | ReadableStream<Uint8Array>, options: CallOptions = {}): Promise<UploadResult> {
    return this.http.json<UploadResult>({
      method: "PUT", path: `/v1/sandboxes/${this.id}/files`, query: { path },
      body: tar as Body, contentType: "application/x-tar", signal: options.signal,
    });
  }
}

export class Sandbox {
  /** The state as of the last call that returned it; `refresh()` reads it again. */
  info: SandboxInfo;
  readonly files: SandboxFiles;

  constructor(private readonly http: Http, info: SandboxInfo) {
    this.info = info;
    this.files = new SandboxFiles(http, info.id);
  }

  get id(): string {
    return this.info.id;
  }

  get status(): SandboxInfo["status"] {
    return this.info.status;
  }

  private path(suffix = ""): string {
    return `/v1/sandboxes/${this.id}${suffix}`;
  }

  /**
   * Runs a command in the running sandbox to its end and returns its exit
   * code and output. A string runs through `/bin/sh -c` (so it needs a shell
   * in the image); an array runs as is, its first item looked up in the
   * sandbox's PATH. The command runs as the image's user.
   *
   * `stdout` and `stderr` are each cut at the server's limit (16 MiB of bytes
   * by default, `maxExecOutputBytes`), and `truncated` is then true; use
   * `execStream` for more. With
   * `timeoutMs`, see `ExecOptions.timeoutMs`: on images without `/bin/sh`
   * under gVisor the command cannot be reached, the call answers at the
   * timeout with `killed: false` and the command may go on. A sandbox stopped
   * while the command runs ends it: `killed: true`, `exitCode: 137`; a memory
   * snapshot taken meanwhile cuts the exec (`killed: true`, `exitCode: -1`),
   * its processes being in the checkpoint.
   * Aborting `signal` gives up on the reply and kills the command.
   *
   * A non-zero exit code is not an error. Throws StrataError:
   * `sandbox_not_found` (404), `sandbox_not_running` (409: stopped, paused or
   * still being created), `bad_request` (400: an empty `cmd`, a relative
   * `cwd`), `engine_unavailable` (503).
   */
  async exec(cmd: string | string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { signal, ...rest } = options;
    return this.http.json<ExecResult>({ method: "POST", path: this.path("/exec"), json: { cmd: argv(cmd), ...rest }, signal });
  }

  /**
   * Runs a command like `exec`, handing its output to `onStdout` and
   * `onStderr` as it comes, with no size limit; resolves with how it ended.
   * Aborting `signal` (or leaving the stream) kills the command with
   * everything it started, and the call rejects with the abort. Throws the
   * StrataErrors of `exec` before any output; a failure after the output has
   * begun rejects with the error the server sent in the stream.
   */
  async execStream(cmd: string | string[], options: ExecStreamOptions = {}): Promise<ExecOutcome> {
    const { signal, onStdout, onStderr, ...rest } = options;
    const response = await this.http.send({ method: "POST", path: this.path("/exec/stream"), json: { cmd: argv(cmd), ...rest }, signal });
    let outcome: ExecOutcome | undefined;
    for await (const event of jsonLines<ExecEvent>(response.body!)) {
      if (event.type === "stdout") onStdout?.(event.data);
      else if (event.type === "stderr") onStderr?.(event.data);
      else if (event.type === "exit") outcome = { exitCode: event.exitCode, timedOut: event.timedOut, killed: event.killed, durationMs: event.durationMs };
      else throw StrataError.fromBody({ error: { code: event.code, message: event.message } }, 500);
    }
    if (!outcome) throw new StrataError("internal", "the exec stream ended without an exit event");
    return outcome;
  }

  /** Reads the sandbox's state again. */
  async refresh(options: CallOptions = {}): Promise<SandboxInfo> {
    this.info = await this.http.json<SandboxInfo>({ method: "GET", path: this.path(), signal: options.signal });
    return this.info;
  }

  /** Stops the sandbox, keeping its filesystem. */
  async stop(options: CallOptions & { timeoutSeconds?: number } = {}): Promise<SandboxInfo> {
    this.info = await this.http.json<SandboxInfo>({
      method: "POST", path: this.path("/stop"), query: { timeoutSeconds: options.timeoutSeconds }, signal: options.signal,
    });
    return this.info;
  }

  /** Starts a stopped sandbox. */
  async start(options: CallOptions = {}): Promise<SandboxInfo> {
    this.info = await this.http.json<SandboxInfo>({ method: "POST", path: this.path("/start"), signal: options.signal });
    return this.info;
  }

  /**
   * Starts a snapshot of the sandbox's whole filesystem. Resolves once the
   * server has accepted it (status `creating`); `waitUntilReady()` waits for it.
   */
  async snapshot(options: SnapshotOptions = {}): Promise<Snapshot> {
    const { signal, idempotencyKey, ...body } = options;
    const info = await this.http.json<SnapshotInfo>({
      method: "POST", path: this.path("/snapshots"), json: body, signal,
      headers: idempotencyKey ? { "idempotency-key": idempotencyKey } : undefined,
    });
    return new Snapshot(this.http, info);
  }

  /**
   * Starts a snapshot of one directory (`/` allowed) as a content-addressed
   * archive; `exclude` takes paths or globs relative to it.
   */
  async snapshotDirectory(path: string, options: SnapshotOptions & { exclude?: string[] } = {}): Promise<Snapshot> {
    const { signal, idempotencyKey, ...body } = options;
    const info = await this.http.json<SnapshotInfo>({
      method: "POST", path: this.path("/snapshots"), json: { kind: "directory", path, ...body }, signal,
      headers: idempotencyKey ? { "idempotency-key": idempotencyKey } : undefined,
    });
    return new Snapshot(this.http, info);
  }

  /**
   * Forks a running gVisor sandbox: a memory snapshot, then `count` new
   * sandboxes whose processes continue from it. The source keeps running.
   */
  async fork(count = 1, options: CallOptions = {}): Promise<Sandbox[]> {
    const reply = await this.http.json<ForkReply>({ method: "POST", path: this.path("/fork"), json: { count }, signal: options.signal });
    return reply.sandboxes.map((info) => new Sandbox(this.http, info));
  }

  /** Removes the sandbox and its container. */
  async delete(options: CallOptions = {}): Promise<void> {
    await this.http.json<void>({ method: "DELETE", path: this.path(), signal: options.signal });
  }
}
