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

/** What `sandbox.snapshot()` and `sandbox.snapshotDirectory()` take. */
export interface SnapshotOptions extends CallOptions {
  /** container (default): the whole filesystem; memory: a gVisor checkpoint of the running processes too. */
  kind?: "container" | "memory";
  /** A unique name (an alias for the id); `snapshot_name_taken` when another snapshot has it. */
  name?: string;
  /** Free-form key/value pairs stored in the manifest; `snapshots.list({ labels })` filters on them. */
  labels?: Record<string, string>;
  /** A retry with the same key returns the first snapshot instead of making another. */
  idempotencyKey?: string;
}

/** What `Sandbox.fork` made. */
export interface ForkResult {
  /** Id of the memory snapshot the forks continue from; it is kept until deleted. */
  readonly snapshotId: string;
  /** The new sandboxes, running, in the order they were started. */
  readonly sandboxes: Sandbox[];
}

/** A string command runs through `/bin/sh -c`; an array runs as is. */
function argv(cmd: string | string[]): string[] {
  return typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd;
}

/**
 * Files inside a running sandbox, read and written through the engine as the
 * sandbox sees them. Paths are absolute paths inside the sandbox. Every method
 * throws `StrataError`: `sandbox_not_found`, `sandbox_not_running`,
 * `path_not_found` (reads), `bad_request` (a path that is not absolute or not
 * valid), `payload_too_large` (writes past the server's `--max-upload-bytes`,
 * 1 GiB by default).
 */
export class SandboxFiles {
  /** Made by `Sandbox`; `id` is the sandbox's id. */
  constructor(private readonly http: Http, private readonly id: string) {}

  /**
   * A file's bytes as a stream, or for a directory an uncompressed tar of it
   * (`contentType` is `application/octet-stream` or `application/x-tar`).
   */
  async stream(path: string, options: CallOptions = {}): Promise<{ contentType: string; body: ReadableStream<Uint8Array> }> {
    const response = await this.http.send({ method: "GET", path: `/v1/sandboxes/${this.id}/files`, query: { path }, signal: options.signal });
    return { contentType: response.headers.get("content-type") ?? "", body: response.body! };
  }

  /** A file's bytes, buffered whole (a directory gives its tar); use `stream()` for large files. */
  async read(path: string, options: CallOptions = {}): Promise<Uint8Array> {
    const response = await this.http.send({ method: "GET", path: `/v1/sandboxes/${this.id}/files`, query: { path }, signal: options.signal });
    return new Uint8Array(await response.arrayBuffer());
  }

  /** A file's content decoded as UTF-8 (invalid bytes become U+FFFD). */
  async readText(path: string, options: CallOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, options));
  }

  /**
   * Writes a file at path as the sandbox resolves it (links followed inside
   * the sandbox), making missing parent directories; the data may be a
   * stream. A new file belongs to `owner` (`user[:group]`, names or numbers)
   * or the sandbox's user, with `mode` (octal, e.g. "0600") or 0644; an
   * overwritten file keeps its owner and mode unless they are given. The
   * body is sent without buffering. Resolves with `UploadResult`: `path`
   * (where the file landed) and `bytes`.
   */
  async write(
    path: string, data: string | Uint8Array | ReadableStream<Uint8Array>, options: CallOptions & { owner?: string; mode?: string } = {},
  ): Promise<UploadResult> {
    return this.http.json<UploadResult>({
      method: "PUT", path: `/v1/sandboxes/${this.id}/files`, query: { path, owner: options.owner, mode: options.mode },
      body: data as Body, contentType: "application/octet-stream", signal: options.signal,
    });
  }

  /**
   * Extracts an uncompressed tar archive into the directory at path; missing
   * directories are made, owned by `owner` or the sandbox's user. Throws
   * `archive_unsafe_path` for members that would land outside it,
   * `archive_truncated` for a tar that ends early.
   */
  async writeTar(path: string, tar: Uint8Array | ReadableStream<Uint8Array>, options: CallOptions & { owner?: string } = {}): Promise<UploadResult> {
    return this.http.json<UploadResult>({
      method: "PUT", path: `/v1/sandboxes/${this.id}/files`, query: { path, owner: options.owner },
      body: tar as Body, contentType: "application/x-tar", signal: options.signal,
    });
  }
}

/**
 * A sandbox: its record as last read (`info`) and the operations on it. Got
 * from `strata.sandboxes.create/get/list` or `fork`. Every method throws
 * `StrataError`; `sandbox_not_found` when it was deleted or expired.
 */
export class Sandbox {
  /** The state as of the last call that returned it; `refresh()` reads it again. */
  info: SandboxInfo;
  /** Reading and writing files inside the sandbox. */
  readonly files: SandboxFiles;

  /** Made by the SDK from a reply; `info` is the server's record. */
  constructor(private readonly http: Http, info: SandboxInfo) {
    this.info = info;
    this.files = new SandboxFiles(http, info.id);
  }

  /** The sandbox's id (a UUID chosen by the server). */
  get id(): string {
    return this.info.id;
  }

  /** The status in `info`: as of the last call, not live; `refresh()` reads it again. */
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

  /**
   * Stops the sandbox, keeping its filesystem: SIGTERM, then SIGKILL after
   * `timeoutSeconds` (default 10). Resolves with the new record.
   */
  async stop(options: CallOptions & { timeoutSeconds?: number } = {}): Promise<SandboxInfo> {
    this.info = await this.http.json<SandboxInfo>({
      method: "POST", path: this.path("/stop"), query: { timeoutSeconds: options.timeoutSeconds }, signal: options.signal,
    });
    return this.info;
  }

  /** Starts a stopped sandbox again (its command starts anew); resolves with the new record. */
  async start(options: CallOptions = {}): Promise<SandboxInfo> {
    this.info = await this.http.json<SandboxInfo>({ method: "POST", path: this.path("/start"), signal: options.signal });
    return this.info;
  }

  /**
   * Starts a snapshot of the sandbox's whole filesystem (`kind: "memory"`: of
   * a gVisor sandbox's processes too). Resolves once the server has accepted
   * it (status `creating`); `waitUntilReady()` waits for it. Throws
   * `sandbox_not_running` (memory), `memory_snapshot_requires_gvisor`,
   * `snapshot_name_taken`, `idempotency_conflict`.
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
   * archive; `exclude` takes paths or globs relative to it. Restore it into a
   * new sandbox with `strata.sandboxes.create({ ..., directorySnapshots:
   * [{ snapshotId, path? }] })`. Throws `path_not_found` when the directory is
   * missing.
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
   * Forks a running gVisor sandbox: takes a memory snapshot, then starts
   * `count` (default 1) new sandboxes whose processes continue from it; the
   * source keeps running where it was. Resolves once every fork runs, with the
   * forks and the id of the memory snapshot they came from: that snapshot stays
   * (any number of further sandboxes can start from it with
   * `strata.sandboxes.create({ memorySnapshotId })`); delete it with
   * `strata.snapshots.get(snapshotId)` then `delete()` once the forks are
   * gone, or with `force` before. Throws `memory_snapshot_requires_gvisor`
   * (runc sandbox), `sandbox_not_running`, `sandbox_busy` (commands exec'd into
   * it are running, or it is being checkpointed already) and
   * `checkpoint_restore_failed`.
   */
  async fork(count = 1, options: CallOptions = {}): Promise<ForkResult> {
    const reply = await this.http.json<ForkReply>({ method: "POST", path: this.path("/fork"), json: { count }, signal: options.signal });
    return { snapshotId: reply.snapshotId, sandboxes: reply.sandboxes.map((info) => new Sandbox(this.http, info)) };
  }

  /**
   * Removes the sandbox: its container and its filesystem. Its snapshots stay.
   * Throws `sandbox_not_found` when it is already gone.
   */
  async delete(options: CallOptions = {}): Promise<void> {
    await this.http.json<void>({ method: "DELETE", path: this.path(), signal: options.signal });
  }
}
