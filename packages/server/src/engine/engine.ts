// The one interface Strata drives containers through. Docker implements it
// today; another runtime (Podman, Kubernetes) would implement the same.
import type { Readable, Writable } from "node:stream";

export interface ImageInfo {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  cmd: string[] | null;
  entrypoint: string[] | null;
  env: string[];
  /** The image config's labels. */
  labels: Record<string, string>;
  sizeBytes: number;
  /** Diff ids of the layers, bottom first. */
  layers: string[];
  architecture: string;
}

export interface ContainerSpec {
  name: string;
  image: string;
  cmd?: string[];
  env: string[];
  labels: Record<string, string>;
  runtime?: string;
  cpus?: number;
  memoryMb?: number;
  pids?: number;
  network: boolean;
  /**
   * Run the engine's init (tini) as the container's first process, with the
   * command as its child: it reaps orphaned processes, so killed commands
   * leave no zombies. Default true; a memory restore must match its source.
   */
  init?: boolean;
}

export type ContainerState = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";

export interface ContainerInfo {
  id: string;
  state: ContainerState;
  exitCode: number;
  labels: Record<string, string>;
  /** The user processes run as (`user[:group]`, names or numbers; "" for root), when the engine reported it (inspect, not list). */
  user?: string;
  /** The runtime's name ("runc", "runsc"), when the engine reported it (inspect, not list). */
  runtime?: string;
}

export interface ExecSpec {
  /** The argv, run as is (no shell). */
  cmd: string[];
  env?: string[];
  cwd?: string;
  stdin?: string;
  timeoutMs?: number;
}

export interface ExecOutcome {
  /** The command's exit code; 137 when it was killed; -1 when the engine could not tell. */
  exitCode: number;
  /** The timeout fired before the command ended. */
  timedOut: boolean;
  /**
   * The exec ended before the command did by itself: the timeout or the
   * caller's abort killed it, or its container stopped (exitCode 137) or was
   * checkpointed and removed (exitCode -1) under it.
   */
  killed: boolean;
}

export interface ExecHandlers {
  onOutput(kind: "stdout" | "stderr", data: Buffer): void;
  signal?: AbortSignal;
}

/** What a path in a container is, from the archive API's stat header. */
export interface PathStat {
  name: string;
  size: number;
  isDirectory: boolean;
  isSymlink: boolean;
  linkTarget: string;
}

export interface ImageSummary {
  id: string;
  labels: Record<string, string>;
  tags: string[];
  sizeBytes: number;
}

export interface CommitSpec {
  repo: string;
  tag: string;
  labels: Record<string, string>;
  /** Pause a running container while its filesystem is read. */
  pause: boolean;
}

/** One progress message of a push or pull: a layer and its bytes so far. */
export interface TransferProgress {
  layer?: string;
  status: string;
  current?: number;
  total?: number;
}

/**
 * A path the engine could not resolve or write inside a container: a loop
 * of symbolic links, a component that is not a directory, one that appeared
 * or vanished while the engine walked it (the sandbox changed it meanwhile),
 * or a file the runtime mounts there, which cannot be replaced.
 */
export class PathFailure extends Error {
  constructor(readonly reason: "loop" | "not_directory" | "changed" | "mounted", readonly path: string) {
    super(reason === "loop" ? `too many levels of symbolic links in '${path}'`
      : reason === "not_directory" ? `a component of '${path}' is not a directory`
      : reason === "mounted" ? `something under '${path}' is a mount point the runtime holds` : `'${path}' changed while it was read`);
  }
}

/** A failure reported by a registry through the engine. */
export class RegistryFailure extends Error {
  constructor(readonly reason: "unavailable" | "denied" | "not_found" | "other", message: string) {
    super(message);
  }
}

export interface BuildSpec {
  dockerfile: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  tag: string;
}

/** A build the engine ran and that failed (a RUN step, a bad instruction). */
export class BuildFailure extends Error {}

export interface Engine {
  /** The engine's version; throws when it does not answer. */
  version(): Promise<string>;
  /** The image with this reference or id, or null when the engine does not have it. */
  inspectImage(ref: string): Promise<ImageInfo | null>;
  createContainer(spec: ContainerSpec): Promise<string>;
  /** Starts a container; with a checkpoint, its processes continue from it (gVisor). */
  startContainer(id: string, checkpoint?: string): Promise<void>;
  /** Checkpoints a running container's processes; the container stops. */
  checkpoint(id: string, name: string): Promise<void>;
  deleteCheckpoint(id: string, name: string): Promise<void>;
  /** Where the engine keeps a container's checkpoints on this host. */
  checkpointDir(id: string, name: string): Promise<string>;
  stopContainer(id: string, graceSeconds: number): Promise<void>;
  /** Removes the container and its anonymous volumes; a missing container is not an error. */
  removeContainer(id: string): Promise<void>;
  inspectContainer(id: string): Promise<ContainerInfo | null>;
  /** How many commands exec'd into the container are running now (0 for a missing container). */
  runningExecs(id: string): Promise<number>;
  /** Containers carrying all these labels, running or not. */
  listContainers(labels: Record<string, string>): Promise<ContainerInfo[]>;
  /**
   * Runs a command in a running container, handing its output to onOutput as
   * it arrives. When spec.timeoutMs passes or handlers.signal aborts, the
   * command and every process it started are killed and nothing more of it
   * runs (exitCode 137, killed true); where the engine cannot reach them it
   * stops waiting and says so (killed false, exitCode as the engine knows it).
   */
  exec(containerId: string, spec: ExecSpec, handlers: ExecHandlers): Promise<ExecOutcome>;
  /** How many execs this engine object is running in the container now (those of this server only). */
  activeExecs(containerId: string): number;
  /**
   * Ends the commands of execs in the container that this engine object did
   * not start and so nobody waits for (left running by a server that was
   * killed): on runc with the engine on this host, by their session, as a
   * timeout does. Resolves with how many it ended; 0 elsewhere (gVisor, a
   * remote engine), where such commands run on until they end.
   */
  endStrayExecs(containerId: string): Promise<number>;
  /**
   * Stat of a path (its last component not followed); null when it does not
   * exist. Links above the last component are followed inside the container;
   * PathFailure when they loop or pass through a file.
   */
  statPath(containerId: string, path: string): Promise<PathStat | null>;
  /** The arguments the engine passes to a runtime it knows (`runsc`), or null when it does not know it. */
  runtimeArgs(runtime: string): Promise<string[] | null>;
  /**
   * The running container's root filesystem as a directory on this host (the
   * overlay's merged view), or null when there is none to read here: a remote
   * engine, a stopped container, another storage driver, or a runtime (gVisor)
   * that keeps the container's writes away from the host.
   */
  hostRootfs(containerId: string): Promise<string | null>;
  /**
   * Mounts a created (not yet started) container's root filesystem on this
   * host, as the engine would when starting it; null when that cannot be done
   * here (as for hostRootfs). `root` is the container's view; `writableLayer`
   * the directory that holds its own changes (the overlay's upper layer),
   * which may be written to only while unmounted. Unmount before starting.
   */
  mountRootfs(containerId: string): Promise<{ root: string; writableLayer: string } | null>;
  /** Undoes mountRootfs; a container that is not mounted is not an error. */
  unmountRootfs(containerId: string): Promise<void>;
  /** A tar stream of the path (a file or a directory); PathFailure as for statPath. */
  getArchive(containerId: string, path: string, signal?: AbortSignal): Promise<{ stat: PathStat; tar: Readable }>;
  /**
   * Extracts a tar stream into the directory at path, which must exist.
   * Members replace what stands at their names (directories merge, taking
   * the member's owner, mode and times); PathFailure as for statPath.
   */
  putArchive(containerId: string, path: string, tar: Readable, signal?: AbortSignal): Promise<void>;
  /** Commits the container's filesystem and config as an image; returns its id. */
  commit(containerId: string, spec: CommitSpec): Promise<string>;
  /** Size of the newest layer of an image: what its last step added. */
  topLayerSize(imageId: string): Promise<number>;
  /** Images carrying all these labels, tagged or not. */
  listImages(labels: Record<string, string>): Promise<ImageSummary[]>;
  /**
   * Removes an image reference. Without force, an image in use stays and
   * this returns false; a missing image is not an error.
   */
  removeImage(ref: string, force: boolean): Promise<boolean>;
  /**
   * The engine's export (`docker save` layout) of these images as one tar
   * stream, handed to `take` a piece at a time: a piece's memory is reused
   * once the promise `take` returns settles. The stream may end where the
   * engine stopped sending: the caller checks the tar's end block.
   */
  saveImages(ids: string[], take: (piece: Buffer) => Promise<void> | void, signal?: AbortSignal): Promise<void>;
  /**
   * Loads a `docker save` tar the caller writes into `input`: a write's
   * callback fires once the engine has been handed its bytes, so their memory
   * can be reused; destroying `input` aborts the load. `done` settles with the
   * engine's verdict. `onLoaded` hears each image the engine reports it
   * loaded (an image id, or a reference for a tagged image), failed loads
   * included, so a caller can undo exactly what a load did.
   */
  loadImages(signal?: AbortSignal, onLoaded?: (ref: string) => void): { input: Writable; done: Promise<void> };
  tagImage(id: string, repo: string, tag: string): Promise<void>;
  /**
   * Builds an image from a context tar (plain or gzip) with the engine's build
   * API; each output line goes to onLine. Resolves to the image id; the engine
   * cancels the build when the signal aborts.
   */
  build(context: Readable, spec: BuildSpec, onLine: (line: string) => void, signal?: AbortSignal): Promise<string>;
  /** Pushes repo:tag to its registry; returns the manifest digest the registry stored. */
  pushImage(repo: string, tag: string, auth: string, onProgress?: (event: TransferProgress) => void, signal?: AbortSignal): Promise<string>;
  /** Pulls `repo@digest` from its registry. */
  pullImage(reference: string, auth: string, onProgress?: (event: TransferProgress) => void, signal?: AbortSignal): Promise<void>;
  close(): void;
}
