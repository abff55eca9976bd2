// The Engine implemented on the Docker Engine API.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync } from "node:fs";
import { basename, dirname, join, posix } from "node:path";
import type { Readable, Writable } from "node:stream";
import { DockerApiError, DockerClient, engineMessages, readText } from "./docker-client.js";
import type {
  CommitSpec, ContainerInfo, ContainerSpec, ContainerState, Engine, ExecHandlers, ExecOutcome, ExecSpec, ImageInfo, ImageSummary, PathStat,
  TransferProgress, BuildSpec,
} from "./engine.js";
import { BuildFailure, PathFailure } from "./engine.js";
import { RegistryFailure } from "./engine.js";
import { demultiplexer } from "./multiplex.js";
import { killCommand, killHostSession, PidLine, shellPath, wrapCommand } from "./docker-exec.js";

interface DockerImage {
  Id: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Size?: number;
  Config?: { Cmd?: string[] | null; Entrypoint?: string[] | null; Env?: string[] | null; Labels?: Record<string, string> | null };
  RootFS?: { Layers?: string[] | null };
  Architecture?: string;
}

interface DockerContainer {
  Id: string;
  State: { Status: ContainerState; ExitCode: number };
  Config: { Labels?: Record<string, string> | null; User?: string };
  /** Execs not yet finished: the engine drops an exec from this list when it exits. */
  ExecIDs?: string[] | null;
  HostConfig?: { Runtime?: string };
  GraphDriver?: { Name?: string; Data?: Record<string, string> | null };
}

interface DockerContainerSummary {
  Id: string;
  State: ContainerState;
  Status: string;
  Labels?: Record<string, string> | null;
}

/** Sorts the engine's registry error messages into what Strata reports. */
function classifyRegistryError(message: string, status: number): RegistryFailure {
  if (/connection refused|no such host|i\/o timeout|dial tcp|EOF|connection reset|server gave HTTP response/i.test(message)) {
    return new RegistryFailure("unavailable", message);
  }
  if (/unauthorized|denied|authentication required|forbidden|basic auth credentials|credentials/i.test(message) || status === 401 || status === 403) return new RegistryFailure("denied", message);
  if (/manifest unknown|not found|does not exist/i.test(message) || status === 404) return new RegistryFailure("not_found", message);
  return new RegistryFailure("other", message);
}

/** Runs a host command; rejects with its error output unless it exits 0. */
function run(command: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (data) => (stderr += data));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${command} failed (${code}): ${stderr.trim()}`))));
  });
}

/** The engine's archive refusals that are about the container's path, not about the engine. */
function pathFailure(text: string, path: string): PathFailure | null {
  if (/too many links/i.test(text)) return new PathFailure("loop", path);
  if (/not a directory/i.test(text)) return new PathFailure("not_directory", path);
  if (/device or resource busy/i.test(text)) return new PathFailure("mounted", path);
  // what the engine's extraction meets when the sandbox adds or removes a name it is walking
  if (/no such file or directory|could not find the file|file exists|directory not empty/i.test(text)) return new PathFailure("changed", path);
  return null;
}

function notFound(error: unknown): boolean {
  return error instanceof DockerApiError && error.status === 404;
}

function parseStat(header: string | string[] | undefined): PathStat | null {
  if (typeof header !== "string") return null;
  const stat = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as {
    name: string; size: number; mode: number; linkTarget: string;
  };
  // Go's os.FileMode: ModeDir is bit 31, ModeSymlink bit 27.
  const mode = stat.mode >>> 0;
  return {
    name: stat.name,
    size: stat.size,
    isDirectory: (mode & 0x80000000) !== 0,
    isSymlink: (mode & 0x08000000) !== 0,
    linkTarget: stat.linkTarget,
  };
}

/** An exec in progress, and what this engine did to its container meanwhile. */
interface LiveExec {
  cut: "stop" | "checkpoint" | null;
}

export class DockerEngine implements Engine {
  private readonly client: DockerClient;

  constructor(dockerHost: string) {
    this.client = new DockerClient(dockerHost);
  }

  async version(): Promise<string> {
    const reply = await this.client.json<{ Version: string }>({ method: "GET", path: "/version" });
    return reply.Version;
  }

  async inspectImage(ref: string): Promise<ImageInfo | null> {
    let path: string;
    try {
      path = `/images/${encodeURIComponent(ref)}/json`;
    } catch {
      return null; // a lone surrogate: no image has such a name
    }
    try {
      const image = await this.client.json<DockerImage>({ method: "GET", path });
      return {
        id: image.Id,
        repoTags: image.RepoTags ?? [],
        repoDigests: image.RepoDigests ?? [],
        cmd: image.Config?.Cmd ?? null,
        entrypoint: image.Config?.Entrypoint ?? null,
        env: image.Config?.Env ?? [],
        labels: image.Config?.Labels ?? {},
        sizeBytes: image.Size ?? 0,
        layers: image.RootFS?.Layers ?? [],
        architecture: image.Architecture ?? "unknown",
      };
    } catch (error) {
      // 400: not a reference; 3xx: a path the engine cleaned (`../`), which names no image either.
      if (notFound(error) || (error instanceof DockerApiError && (error.status === 400 || (error.status >= 300 && error.status < 400)))) return null;
      throw error;
    }
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const reply = await this.client.json<{ Id: string }>({
      method: "POST",
      path: "/containers/create",
      query: { name: spec.name },
      body: {
        Image: spec.image,
        Cmd: spec.cmd,
        Env: spec.env,
        Labels: spec.labels,
        Tty: false,
        // An open, unattached stdin keeps shell-based images alive, like `docker run -di`.
        OpenStdin: true,
        StdinOnce: false,
        HostConfig: {
          Runtime: spec.runtime,
          NanoCpus: spec.cpus ? Math.round(spec.cpus * 1e9) : undefined,
          Memory: spec.memoryMb ? spec.memoryMb * 1024 * 1024 : undefined,
          PidsLimit: spec.pids,
          NetworkMode: spec.network ? "bridge" : "none",
          Init: spec.init ?? true,
        },
      },
    });
    if (spec.init ?? true) {
      try {
        await this.checkCommand(reply.Id);
      } catch (error) {
        await this.removeContainer(reply.Id).catch(() => undefined);
        throw error;
      }
    }
    return reply.Id;
  }

  /**
   * Under an init the runtime no longer refuses a command that is not there
   * (the init starts, reports it and exits 127), so look it up here as the
   * runtime would: a path as given, a bare name in the container's PATH.
   * Throws a 400 DockerApiError when nothing executable-looking is there.
   */
  private async checkCommand(id: string): Promise<void> {
    const c = await this.client.json<{ Path?: string; Config: { Env?: string[] | null; WorkingDir?: string } }>({
      method: "GET", path: `/containers/${id}/json`,
    });
    const name = c.Path ?? "";
    if (!name) return; // the engine refuses a container without a command itself
    const path = (c.Config.Env ?? []).find((entry) => entry.startsWith("PATH="))?.slice(5) ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    const candidates = name.includes("/")
      ? [posix.resolve(c.Config.WorkingDir || "/", name)]
      : path.split(":").filter((dir) => dir.startsWith("/")).map((dir) => posix.join(dir, name));
    const found = await Promise.all(candidates.map((candidate) => this.statPath(id, candidate).catch(() => null)));
    if (found.some((stat) => stat && !stat.isDirectory)) return;
    const where = name.includes("/") ? `stat ${candidates[0]}: no such file` : `executable file not found in $PATH`;
    throw new DockerApiError(400, `the command cannot start: exec: "${name}": ${where}`, `/containers/${id}/start`);
  }

  async startContainer(id: string, checkpoint?: string): Promise<void> {
    await this.client.call({ method: "POST", path: `/containers/${id}/start`, query: { checkpoint } });
  }

  async checkpoint(id: string, name: string): Promise<void> {
    this.cutExecs(id, "checkpoint");
    await this.client.call({ method: "POST", path: `/containers/${id}/checkpoints`, body: { CheckpointID: name, Exit: true } });
  }

  async deleteCheckpoint(id: string, name: string): Promise<void> {
    try {
      await this.client.call({ method: "DELETE", path: `/containers/${id}/checkpoints/${name}` });
    } catch (error) {
      if (!notFound(error)) throw error;
    }
  }

  private dataRoot: string | undefined;

  async checkpointDir(id: string, name: string): Promise<string> {
    if (!this.client.isLocal) throw new DockerApiError(501, "checkpoints need the engine on this host", "checkpoints");
    this.dataRoot ??= (await this.client.json<{ DockerRootDir: string }>({ method: "GET", path: "/info" })).DockerRootDir;
    const full = (await this.client.json<{ Id: string }>({ method: "GET", path: `/containers/${id}/json` })).Id;
    return `${this.dataRoot}/containers/${full}/checkpoints/${name}`;
  }

  async stopContainer(id: string, graceSeconds: number): Promise<void> {
    this.cutExecs(id, "stop");
    await this.client.call({ method: "POST", path: `/containers/${id}/stop`, query: { t: graceSeconds } });
  }

  async removeContainer(id: string): Promise<void> {
    this.execTargets.delete(id);
    this.cutExecs(id, "stop");
    try {
      await this.client.call({ method: "DELETE", path: `/containers/${id}`, query: { force: true, v: true } });
    } catch (error) {
      if (!notFound(error)) throw error;
    }
  }

  async inspectContainer(id: string): Promise<ContainerInfo | null> {
    try {
      const c = await this.client.json<DockerContainer>({ method: "GET", path: `/containers/${id}/json` });
      return {
        id: c.Id, state: c.State.Status, exitCode: c.State.ExitCode, labels: c.Config.Labels ?? {},
        user: c.Config.User ?? "", runtime: c.HostConfig?.Runtime ?? "runc",
      };
    } catch (error) {
      if (notFound(error)) return null;
      throw error;
    }
  }

  async runningExecs(id: string): Promise<number> {
    let ids: string[];
    try {
      ids = (await this.client.json<DockerContainer>({ method: "GET", path: `/containers/${id}/json` })).ExecIDs ?? [];
    } catch (error) {
      if (notFound(error)) return 0;
      throw error;
    }
    // The list also holds execs created but never started, and one that has
    // just exited may linger for a moment: count those the engine says run.
    const running = await Promise.all(ids.map((execId) =>
      this.client.json<{ Running: boolean }>({ method: "GET", path: `/exec/${execId}/json` }).then((e) => e.Running, (error) => {
        if (notFound(error)) return false;
        throw error;
      })));
    return running.filter(Boolean).length;
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    const filters = JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) });
    const list = await this.client.json<DockerContainerSummary[]>({
      method: "GET", path: "/containers/json", query: { all: true, filters },
    });
    return list.map((c) => ({
      id: c.Id,
      state: c.State,
      exitCode: Number(/Exited \((\d+)\)/.exec(c.Status)?.[1] ?? 0),
      labels: c.Labels ?? {},
    }));
  }

  /** Per container: the execs running in it now, each marked once its container is stopped, checkpointed or removed under it. */
  private readonly liveExecs = new Map<string, Set<LiveExec>>();

  private cutExecs(containerId: string, by: "stop" | "checkpoint"): void {
    for (const live of this.liveExecs.get(containerId) ?? []) live.cut ??= by;
  }

  activeExecs(containerId: string): number {
    return this.liveExecs.get(containerId)?.size ?? 0;
  }

  async endStrayExecs(containerId: string): Promise<number> {
    if (this.activeExecs(containerId)) return 0;
    let container: DockerContainer & { State: { Pid: number } };
    try {
      container = await this.client.json({ method: "GET", path: `/containers/${containerId}/json` });
    } catch (error) {
      if (notFound(error)) return 0;
      throw error;
    }
    const ids = container.ExecIDs ?? [];
    if (!ids.length || !this.client.isLocal || !(await this.execTarget(containerId)).runc || !(container.State.Pid > 1)) return 0;
    let ended = 0;
    for (const execId of ids) {
      const info = await this.client.json<{ Pid: number; Running: boolean }>({ method: "GET", path: `/exec/${execId}/json` }).catch(() => null);
      if (!info?.Running || !(info.Pid > 1)) continue;
      killHostSession(info.Pid, container.State.Pid);
      ended++;
    }
    return ended;
  }

  /** Per container: whether the exec wrapper can run in it, its runtime. Dropped when the container is removed. */
  private readonly execTargets = new Map<string, Promise<{ shell: boolean; runc: boolean }>>();

  private execTarget(containerId: string): Promise<{ shell: boolean; runc: boolean }> {
    let target = this.execTargets.get(containerId);
    if (!target) {
      target = (async () => {
        const [shell, container] = await Promise.all([
          this.statPath(containerId, shellPath),
          this.client.json<DockerContainer>({ method: "GET", path: `/containers/${containerId}/json` }),
        ]);
        return { shell: shell !== null && !shell.isDirectory, runc: (container.HostConfig?.Runtime ?? "runc") === "runc" };
      })();
      target.catch(() => this.execTargets.delete(containerId));
      this.execTargets.set(containerId, target);
    }
    return target;
  }

  /** Runs a command as root to its end, output discarded; resolves with its exit code. */
  private async execQuiet(containerId: string, cmd: string[]): Promise<number | null> {
    const { Id: execId } = await this.client.json<{ Id: string }>({
      method: "POST",
      path: `/containers/${containerId}/exec`,
      body: { Cmd: cmd, User: "0", AttachStdin: false, AttachStdout: true, AttachStderr: true, Tty: false },
    });
    const reply = await this.client.request({ method: "POST", path: `/exec/${execId}/start`, body: { Detach: false, Tty: false } });
    await readText(reply.body);
    if (reply.status >= 400) throw new DockerApiError(reply.status, `exec ${cmd[0]} failed`, "exec");
    const info = await this.client.json<{ ExitCode: number | null }>({ method: "GET", path: `/exec/${execId}/json` });
    return info.ExitCode;
  }

  /**
   * Ends a running exec and everything it started (see docker-exec.ts);
   * resolves true when that was done, false when this engine cannot reach
   * the command (no /bin/sh, and not a runc container on this host).
   */
  private async endExec(containerId: string, execId: string, shell: boolean, runc: boolean, pid: Promise<number | null>): Promise<boolean> {
    if (shell) {
      // the wrapper's first act is to say its pid; a wrapper that never does has not run
      const inside = await Promise.race([pid, new Promise<null>((r) => setTimeout(() => r(null), 5000).unref())]);
      // (a killer that cannot start, as when the command used up the pids limit, falls back to the host on runc)
      if (inside !== null && (await this.execQuiet(containerId, killCommand(inside)).catch(() => null)) === 0) return true;
    }
    if (!runc || !this.client.isLocal) return false;
    const [info, container] = await Promise.all([
      this.client.json<{ Pid: number; Running: boolean }>({ method: "GET", path: `/exec/${execId}/json` }),
      this.client.json<{ State: { Pid: number } }>({ method: "GET", path: `/containers/${containerId}/json` }),
    ]);
    if (!info.Running) return true;
    if (info.Pid > 1 && container.State.Pid > 1) killHostSession(info.Pid, container.State.Pid);
    return true;
  }

  /** Whether the container is not running, or was (re)started after `since` (ms since the epoch). */
  private async containerLeft(containerId: string, since: number): Promise<boolean> {
    try {
      const c = await this.client.json<{ State: { Status: ContainerState; StartedAt?: string } }>({ method: "GET", path: `/containers/${containerId}/json` });
      return c.State.Status !== "running" || (c.State.StartedAt ? Date.parse(c.State.StartedAt) > since : false);
    } catch (error) {
      if (notFound(error)) return true;
      throw error;
    }
  }

  async exec(containerId: string, spec: ExecSpec, handlers: ExecHandlers): Promise<ExecOutcome> {
    const live: LiveExec = { cut: null };
    const set = this.liveExecs.get(containerId) ?? new Set();
    this.liveExecs.set(containerId, set.add(live));
    try {
      return await this.runExec(containerId, spec, handlers, live);
    } finally {
      set.delete(live);
      if (!set.size && this.liveExecs.get(containerId) === set) this.liveExecs.delete(containerId);
    }
  }

  private async runExec(containerId: string, spec: ExecSpec, handlers: ExecHandlers, live: LiveExec): Promise<ExecOutcome> {
    handlers.signal?.throwIfAborted(); // nobody waits for it any more: never start it
    const execStarted = Date.now();
    const { shell, runc } = await this.execTarget(containerId);
    const token = `strata-exec-${randomBytes(8).toString("hex")}`;
    const pidLine = new PidLine(token, (data) => handlers.onOutput("stderr", data));
    if (!shell) pidLine.end();
    const withStdin = spec.stdin !== undefined;
    const { Id: execId } = await this.client.json<{ Id: string }>({
      method: "POST",
      path: `/containers/${containerId}/exec`,
      body: {
        Cmd: shell ? wrapCommand(spec.cmd, token) : spec.cmd, Env: spec.env, WorkingDir: spec.cwd,
        AttachStdin: withStdin, AttachStdout: true, AttachStderr: true, Tty: false,
      },
    });
    const socket = await this.client.hijack({
      method: "POST", path: `/exec/${execId}/start`, body: { Detach: false, Tty: false },
    });
    let reason: "timeout" | "abort" | null = null;
    let ending: Promise<boolean> | null = null;
    const end = (why: "timeout" | "abort") => {
      if (reason) return;
      reason = why;
      // Never wait on the kill itself for long: a frozen container does not run the killer.
      ending = Promise.race([
        this.endExec(containerId, execId, shell, runc, pidLine.pid).catch(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(false), 15_000).unref()),
      ]);
      // Whatever still holds the stream open once the command is gone (or could not be reached), stop waiting for it.
      void ending.then(() => setTimeout(() => socket.destroy(), 1000).unref());
    };
    // A stopped or checkpointed container does not always end its execs' streams: watch it, and once it
    // is not running, give the engine a moment to pass on the last output, then stop waiting. Short
    // execs (most) end before the watch starts and cost no extra request.
    let containerEnded = false;
    const watch = new AbortController();
    const watchContainer = () => {
      void this.client
        .request({ method: "POST", path: `/containers/${containerId}/wait`, query: { condition: "not-running" }, signal: watch.signal, ownConnection: true })
        .then(async (reply) => {
          await readText(reply.body);
          if (watch.signal.aborted) return;
          containerEnded = true;
          setTimeout(() => socket.destroy(), 500).unref();
        })
        .catch(() => undefined);
    };
    const watchTimer = setTimeout(watchContainer, 1000);
    const timer = spec.timeoutMs ? setTimeout(() => end("timeout"), spec.timeoutMs) : undefined;
    const onAbort = () => end("abort");
    if (handlers.signal?.aborted) onAbort();
    else handlers.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        const sink = demultiplexer((kind, data) => (kind === "stderr" ? pidLine.write(data) : handlers.onOutput(kind, data)));
        socket.on("error", (error) => (reason || containerEnded ? resolve() : reject(error)));
        socket.on("close", () => resolve());
        sink.on("finish", () => resolve());
        socket.pipe(sink);
        if (withStdin) socket.end(spec.stdin);
      });
    } finally {
      clearTimeout(timer);
      clearTimeout(watchTimer);
      watch.abort();
      handlers.signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      pidLine.end();
    }
    const ended = ending ? await ending : false;
    // The engine may take a moment to record the exit code after the stream ends.
    let exitCode: number | null = null;
    let execGone = false;
    for (let attempt = 0; attempt < 100; attempt++) {
      let info: { ExitCode: number | null; Running: boolean };
      try {
        info = await this.client.json({ method: "GET", path: `/exec/${execId}/json` });
      } catch (error) {
        // the exec went with its container (removed after a checkpoint): its end is unknown
        if (!notFound(error)) throw error;
        execGone = true;
        break;
      }
      if (!info.Running && info.ExitCode !== null) { exitCode = info.ExitCode; break; }
      if ((reason && !ended) || containerEnded) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (reason) {
      // An exit code other than SIGKILL's means the command ended by itself before the kill landed.
      const killed = ended && (exitCode === null || exitCode === 137);
      return { exitCode: killed ? 137 : (exitCode ?? -1), timedOut: reason === "timeout", killed };
    }
    // Cut with its container: a stop tears the container's processes down
    // with SIGKILL; a checkpoint (gVisor) takes them away, and the engine then
    // reports whatever the runtime's exec said, 0 included. Either way the
    // command did not finish. The engine may record the container's end a
    // moment after the exec's, so a SIGKILL nobody here sent waits for it a
    // little (an OOM kill or the command's own kill -9 leaves it running).
    // A stop kills (137); after a checkpoint the processes live on in it, their end unknown (-1).
    const cut = { exitCode: live.cut === "stop" || exitCode === 137 ? 137 : -1, timedOut: false, killed: true };
    if (live.cut || containerEnded || execGone) return cut;
    const polls = exitCode === null || exitCode === 137 ? 40 : runc ? 0 : 1;
    for (let attempt = 0; attempt < polls; attempt++) {
      if (await this.containerLeft(containerId, execStarted)) return cut;
      if (attempt + 1 < polls) await new Promise((r) => setTimeout(r, 25));
    }
    return { exitCode: exitCode ?? -1, timedOut: false, killed: false };
  }

  async statPath(containerId: string, path: string): Promise<PathStat | null> {
    const reply = await this.client.request({ method: "HEAD", path: `/containers/${containerId}/archive`, query: { path } });
    reply.body.resume();
    if (reply.status === 404) return null;
    if (reply.status >= 400) {
      // a HEAD reply has no body: ask again with GET, which fails the same way before any tar is sent, to learn why
      const again = await this.client.request({ method: "GET", path: `/containers/${containerId}/archive`, query: { path } });
      if (again.status < 400) {
        again.body.destroy();
        throw new PathFailure("changed", path);
      }
      const text = await readText(again.body);
      if (again.status === 404) return null;
      throw pathFailure(text, path) ?? new DockerApiError(again.status, text, "archive");
    }
    return parseStat(reply.headers["x-docker-container-path-stat"]);
  }

  private runtimes: Record<string, { runtimeArgs?: string[] | null }> | undefined;

  async runtimeArgs(runtime: string): Promise<string[] | null> {
    this.runtimes ??= (await this.client.json<{ Runtimes?: Record<string, { runtimeArgs?: string[] | null }> }>({ method: "GET", path: "/info" })).Runtimes ?? {};
    const found = this.runtimes[runtime];
    return found ? found.runtimeArgs ?? [] : null;
  }

  /**
   * Where a runc container's overlay lives on this host, with its state; null
   * when the engine is remote or the container uses another driver or runtime.
   */
  private async overlay(containerId: string): Promise<{ state: ContainerState; layerDir: string; merged: string } | null> {
    if (!this.client.isLocal) return null;
    const c = await this.client.json<DockerContainer>({ method: "GET", path: `/containers/${containerId}/json` });
    const data = c.GraphDriver?.Data;
    if (c.GraphDriver?.Name !== "overlay2" || !data?.UpperDir || !data.MergedDir || (c.HostConfig?.Runtime ?? "runc") !== "runc") return null;
    return { state: c.State.Status, layerDir: dirname(data.UpperDir), merged: data.MergedDir };
  }

  async hostRootfs(containerId: string): Promise<string | null> {
    const overlay = await this.overlay(containerId);
    if (overlay?.state !== "running" && overlay?.state !== "paused") return null;
    try {
      accessSync(overlay.merged, constants.R_OK | constants.X_OK);
      return overlay.merged;
    } catch {
      return null; // the engine's data is not readable from here (another mount namespace, no permission)
    }
  }

  /** The overlay of a created container this process may mount, or null. */
  private async mountable(containerId: string): Promise<{ layerDir: string; merged: string } | null> {
    if (process.getuid?.() !== 0) return null;
    const overlay = await this.overlay(containerId);
    if (overlay?.state !== "created" || !existsSync(join(overlay.layerDir, "lower"))) return null;
    return overlay;
  }

  async mountRootfs(containerId: string): Promise<{ root: string; writableLayer: string } | null> {
    const overlay = await this.mountable(containerId);
    if (!overlay) return null;
    // the engine's own form: short lower links relative to its overlay root
    const id = basename(overlay.layerDir);
    const lower = readFileSync(join(overlay.layerDir, "lower"), "utf8").trim();
    const options = `lowerdir=${lower},upperdir=${id}/diff,workdir=${id}/work`;
    const cwd = dirname(overlay.layerDir);
    // the engine makes the mount point when it mounts, and removes it after
    mkdirSync(overlay.merged, { recursive: true, mode: 0o700 });
    try {
      await run("mount", ["-t", "overlay", "overlay", "-o", `index=off,${options}`, overlay.merged], cwd);
    } catch {
      await run("mount", ["-t", "overlay", "overlay", "-o", options, overlay.merged], cwd);
    }
    return { root: overlay.merged, writableLayer: join(overlay.layerDir, "diff") };
  }

  async unmountRootfs(containerId: string): Promise<void> {
    const overlay = await this.mountable(containerId).catch(() => null);
    if (!overlay) return;
    const mounted = readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((line) => line.split(" ")[4] === overlay.merged);
    if (mounted) await run("umount", [overlay.merged], "/");
    try {
      rmdirSync(overlay.merged);
    } catch {
      // not empty or already gone: the engine copes either way
    }
  }

  async getArchive(containerId: string, path: string, signal?: AbortSignal): Promise<{ stat: PathStat; tar: Readable }> {
    const reply = await this.client.request({ method: "GET", path: `/containers/${containerId}/archive`, query: { path }, signal });
    if (reply.status >= 400) {
      const text = await readText(reply.body);
      if (reply.status === 404) throw new PathFailure("changed", path);
      throw pathFailure(text, path) ?? new DockerApiError(reply.status, text, "archive");
    }
    const stat = parseStat(reply.headers["x-docker-container-path-stat"]);
    if (!stat) throw new DockerApiError(500, "engine sent no path stat", "archive");
    return { stat, tar: reply.body };
  }

  async putArchive(containerId: string, path: string, tar: Readable, signal?: AbortSignal): Promise<void> {
    const reply = await this.client.request({
      method: "PUT", path: `/containers/${containerId}/archive`, query: { path }, body: tar, contentType: "application/x-tar", signal,
    });
    const text = await readText(reply.body);
    if (reply.status >= 400) {
      if (reply.status === 404) throw new PathFailure("changed", path);
      // a body that is not a tar (or is cut short) is the caller's input, not the engine's fault
      if (/invalid tar header|unexpected EOF/i.test(text)) throw new DockerApiError(400, "the upload is not a complete tar archive", "archive");
      throw pathFailure(text, path) ?? new DockerApiError(reply.status, text, "archive");
    }
  }

  async commit(containerId: string, spec: CommitSpec): Promise<string> {
    const reply = await this.client.json<{ Id: string }>({
      method: "POST",
      path: "/commit",
      query: { container: containerId, repo: spec.repo, tag: spec.tag, pause: spec.pause },
      body: { Labels: spec.labels },
    });
    return reply.Id;
  }

  async topLayerSize(imageId: string): Promise<number> {
    const history = await this.client.json<{ Size: number }[]>({ method: "GET", path: `/images/${imageId}/history` });
    return history[0]?.Size ?? 0;
  }

  async listImages(labels: Record<string, string>): Promise<ImageSummary[]> {
    const filters = JSON.stringify({ label: Object.entries(labels).map(([k, v]) => (v === "" ? k : `${k}=${v}`)) });
    const list = await this.client.json<{ Id: string; Labels?: Record<string, string> | null; RepoTags?: string[] | null; Size: number }[]>({
      method: "GET", path: "/images/json", query: { all: true, filters },
    });
    return list.map((image) => ({
      id: image.Id,
      labels: image.Labels ?? {},
      tags: (image.RepoTags ?? []).filter((tag) => tag !== "<none>:<none>"),
      sizeBytes: image.Size,
    }));
  }

  async removeImage(ref: string, force: boolean): Promise<boolean> {
    try {
      await this.client.call({ method: "DELETE", path: `/images/${encodeURIComponent(ref)}`, query: { force, noprune: false } });
      return true;
    } catch (error) {
      if (notFound(error)) return true;
      if (error instanceof DockerApiError && error.status === 409 && !force) return false;
      throw error;
    }
  }

  saveImages(ids: string[], take: (piece: Buffer) => Promise<void> | void, signal?: AbortSignal): Promise<void> {
    const names = ids.map((id) => `names=${encodeURIComponent(id)}`).join("&");
    return this.client.readInto(`/images/get?${names}`, take, signal);
  }

  loadImages(signal?: AbortSignal, onLoaded?: (ref: string) => void): { input: Writable; done: Promise<void> } {
    const { input, reply } = this.client.upload({ method: "POST", path: "/images/load", query: { quiet: true }, contentType: "application/x-tar", signal });
    const done = reply.then(async (reply) => {
      if (reply.status >= 400) throw new DockerApiError(reply.status, await readText(reply.body), "images/load");
      // Errors during the load arrive in the message stream with a 200.
      for await (const message of engineMessages(reply.body)) {
        if (message.error) throw new DockerApiError(400, message.errorDetail?.message ?? message.error, "images/load");
        const loaded = /^Loaded image(?: ID)?: (\S+)/.exec(message.stream ?? "");
        if (loaded) onLoaded?.(loaded[1]!);
      }
    });
    return { input, done };
  }

  private async registryStream(
    path: string, query: Record<string, string>, auth: string, onProgress?: (event: TransferProgress) => void, signal?: AbortSignal,
  ): Promise<{ digest?: string }> {
    const reply = await this.client.request({ method: "POST", path, query, headers: { "x-registry-auth": auth }, signal });
    if (reply.status >= 400) throw classifyRegistryError(await readText(reply.body), reply.status);
    let digest: string | undefined;
    for await (const message of engineMessages(reply.body)) {
      if (message.error) throw classifyRegistryError(message.errorDetail?.message ?? message.error, 0);
      if (message.aux?.Digest) digest = message.aux.Digest;
      const found = /digest: (sha256:[0-9a-f]{64})/.exec(message.status ?? "");
      if (found) digest ??= found[1];
      if (message.status) {
        onProgress?.({ status: message.status, ...(message.id ? { layer: message.id } : {}), ...message.progressDetail });
      }
    }
    return { digest };
  }

  async pushImage(repo: string, tag: string, auth: string, onProgress?: (event: TransferProgress) => void, signal?: AbortSignal): Promise<string> {
    const { digest } = await this.registryStream(`/images/${repo}/push`, { tag }, auth, onProgress, signal);
    if (!digest) throw new RegistryFailure("other", `the engine pushed ${repo}:${tag} but reported no digest`);
    return digest;
  }

  async pullImage(reference: string, auth: string, onProgress?: (event: TransferProgress) => void, signal?: AbortSignal): Promise<void> {
    await this.registryStream("/images/create", { fromImage: reference }, auth, onProgress, signal);
  }

  async build(context: Readable, spec: BuildSpec, onLine: (line: string) => void, signal?: AbortSignal): Promise<string> {
    const reply = await this.client.request({
      method: "POST",
      path: "/build",
      query: {
        dockerfile: spec.dockerfile,
        buildargs: JSON.stringify(spec.buildArgs),
        labels: JSON.stringify(spec.labels),
        t: spec.tag,
        rm: true,
        forcerm: true,
        pull: false,
      },
      body: context,
      contentType: "application/x-tar",
      signal,
    });
    if (reply.status >= 400) throw new BuildFailure(JSON.parse(await readText(reply.body) || "{}").message ?? `build refused (${reply.status})`);
    let imageId: string | undefined;
    let pending = "";
    const emit = (text: string) => {
      pending += text;
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, newline).replace(/\r$/, ""));
        pending = pending.slice(newline + 1);
      }
    };
    for await (const message of engineMessages(reply.body)) {
      if (message.stream) emit(message.stream);
      if (message.status) emit(`${message.status}\n`);
      if (message.aux?.ID) imageId = message.aux.ID;
      if (message.error) {
        if (pending) emit("\n");
        throw new BuildFailure(message.errorDetail?.message ?? message.error);
      }
    }
    if (pending) emit("\n");
    if (!imageId) throw new BuildFailure("the engine finished the build without an image");
    return imageId;
  }

  async tagImage(id: string, repo: string, tag: string): Promise<void> {
    await this.client.call({ method: "POST", path: `/images/${encodeURIComponent(id)}/tag`, query: { repo, tag } });
  }

  close(): void {
    this.client.close();
  }
}
