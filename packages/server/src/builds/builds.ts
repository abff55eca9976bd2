// Builds: a queue of build contexts run on the engine's build API a few at a
// time, each ending as a ready container snapshot. Every build keeps its log
// (in memory and in `builds/<id>/log.jsonl`) so late and reconnecting
// subscribers get all of it.
import { randomUUID } from "node:crypto";
import { appendFileSync, createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { StrataError, type Build, type BuildLogEvent, type Snapshot } from "@strata/contract";
import { labelKeys, snapshotRepo, type Context } from "../context.js";
import { BuildFailure } from "../engine/engine.js";
import { engineError } from "../engine/errors.js";
import type { ManifestV1 } from "../snapshots/manifest.js";
import { markReady } from "../snapshots/ready.js";
import { writeFileDurable } from "../store/durable.js";
import { baseImages } from "./dockerfile.js";
import { StreamScope } from "../streams.js";

export interface BuildRequest {
  dockerfile: string;
  dockerfileText: string;
  buildArgs: Record<string, string>;
  name?: string;
  labels: Record<string, string>;
  replace: boolean;
}

interface BuildState {
  record: Build;
  request: BuildRequest;
  snapshotId: string;
  events: BuildLogEvent[];
  contextFile: string;
  controller: AbortController;
  done?: Promise<void>;
}

const terminal = new Set(["succeeded", "failed", "cancelled"]);

export class Builds {
  private readonly builds = new Map<string, BuildState>();
  /** Step images of builds an earlier run left unfinished, newest first: `recover()` removes them. */
  private readonly interruptedSteps: string[] = [];
  private readonly queue: string[] = [];
  private running = 0;
  private readonly events = new EventEmitter();
  readonly root: string;

  constructor(private readonly ctx: Context, private readonly maxConcurrent: number) {
    this.root = join(ctx.config.home, "builds");
    mkdirSync(this.root, { recursive: true });
    this.events.setMaxListeners(0);
    this.load();
  }

  /** Builds from an earlier run; those it left unfinished end as failed. */
  private load(): void {
    for (const id of readdirSync(this.root)) {
      const dir = join(this.root, id);
      try {
        const saved = JSON.parse(readFileSync(join(dir, "build.json"), "utf8")) as { record: Build; request: BuildRequest; snapshotId: string };
        const events = existsSync(join(dir, "log.jsonl"))
          ? readFileSync(join(dir, "log.jsonl"), "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as BuildLogEvent)
          : [];
        const state: BuildState = { ...saved, events, contextFile: join(dir, "context"), controller: new AbortController() };
        this.builds.set(id, state);
        rmSync(state.contextFile, { force: true });
        if (!terminal.has(state.record.status)) {
          // the log kept each step's image as it came: what a killed build made carries no label to find it by
          this.interruptedSteps.push(...stepImagesIn(events).reverse());
          this.finish(state, "failed", { code: "interrupted", message: "the server stopped during the build" });
        }
      } catch {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  /**
   * Removes the step images of builds the last run left unfinished (untagged
   * ones no other image builds on; see `removeStepImages`), retrying while
   * the engine still winds down the build the killed server started. Called
   * once at startup; never rejects.
   */
  async recover(): Promise<void> {
    const steps = this.interruptedSteps.splice(0);
    if (steps.length) await this.removeStepImages(steps, true).catch(() => undefined);
  }

  /** A directory and a file for a new build's context, before it is checked. */
  reserve(): { id: string; dir: string; contextFile: string } {
    const id = randomUUID();
    const dir = join(this.root, id);
    mkdirSync(dir, { recursive: true });
    return { id, dir, contextFile: join(dir, "context") };
  }

  discard(id: string): void {
    rmSync(join(this.root, id), { recursive: true, force: true });
  }

  /** Queues a checked build. */
  enqueue(id: string, contextFile: string, request: BuildRequest): Build {
    if (request.name && !request.replace && this.ctx.index.snapshotNameOwner(request.name)) {
      throw new StrataError("snapshot_name_taken", `a snapshot named '${request.name}' already exists (replace=true re-points it)`);
    }
    const record: Build = {
      id, status: "queued", ...(request.name ? { name: request.name } : {}), dockerfile: request.dockerfile,
      architecture: process.arch === "x64" ? "amd64" : process.arch, createdAt: new Date().toISOString(),
    };
    const state: BuildState = { record, request, snapshotId: randomUUID(), events: [], contextFile, controller: new AbortController() };
    this.builds.set(id, state);
    this.save(state);
    this.queue.push(id);
    this.pump();
    return record;
  }

  get(id: string): Build {
    return this.state(id).record;
  }

  private state(id: string): BuildState {
    const state = this.builds.get(id);
    if (!state) throw new StrataError("build_not_found", `no build '${id}'`);
    return state;
  }

  /** Events after `afterId` (1-based ids), and whether the log is complete. */
  eventsAfter(id: string, afterId: number): { events: { id: number; event: BuildLogEvent }[]; finished: boolean } {
    const state = this.state(id);
    return {
      events: state.events.slice(afterId).map((event, i) => ({ id: afterId + i + 1, event })),
      finished: terminal.has(state.record.status),
    };
  }

  /** Calls listener for each new event of the build; returns the unsubscribe. */
  subscribe(id: string, listener: (eventId: number, event: BuildLogEvent) => void): () => void {
    this.state(id);
    const handler = (eventId: number, event: BuildLogEvent) => listener(eventId, event);
    this.events.on(id, handler);
    return () => this.events.off(id, handler);
  }

  async cancel(id: string): Promise<Build> {
    const state = this.state(id);
    if (state.record.status === "queued") {
      this.queue.splice(this.queue.indexOf(id), 1);
      rmSync(state.contextFile, { force: true });
      this.finish(state, "cancelled", { code: "cancelled", message: "the build was cancelled" });
    } else if (state.record.status === "running") {
      state.controller.abort();
      await state.done;
    }
    return state.record;
  }

  /** Waits for running builds (shutdown). */
  async drain(): Promise<void> {
    for (const id of this.queue.splice(0)) this.finish(this.state(id), "cancelled", { code: "cancelled", message: "the server is stopping" });
    await Promise.all([...this.builds.values()].map((state) => state.done));
  }

  private pump(): void {
    while (this.running < this.maxConcurrent && this.queue.length) {
      const state = this.state(this.queue.shift()!);
      this.running++;
      // in a scope of its own, not the request's that queued it: the build outlives the request, and
      // an error of its streams nobody handled fails this build alone
      const scope = new StreamScope((error) => state.controller.abort(error));
      state.done = scope.run(() => this.run(state)).finally(() => scope.close()).catch((error) => {
        this.ctx.config.log({ event: "build_crashed", buildId: state.record.id, message: String((error as Error)?.stack ?? error) });
      }).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private emit(state: BuildState, event: BuildLogEvent): void {
    state.events.push(event);
    try {
      appendFileSync(join(this.root, state.record.id, "log.jsonl"), `${JSON.stringify(event)}\n`);
    } catch {
      // the in-memory log still serves subscribers
    }
    this.events.emit(state.record.id, state.events.length, event);
  }

  private save(state: BuildState): void {
    writeFileDurable(join(this.root, state.record.id, "build.json"), JSON.stringify({ record: state.record, request: state.request, snapshotId: state.snapshotId }));
  }

  private finish(state: BuildState, status: "succeeded" | "failed" | "cancelled", error?: { code: string; message: string }, snapshot?: Snapshot): void {
    state.record = {
      ...state.record, status, finishedAt: new Date().toISOString(),
      ...(error ? { error } : {}),
      ...(snapshot ? { snapshotId: snapshot.id, ...(snapshot.imageUri ? { imageUri: snapshot.imageUri } : {}) } : {}),
    };
    this.save(state);
    this.emit(state, snapshot ? { type: "done", snapshot } : { type: "error", code: error!.code, message: error!.message });
  }

  private async run(state: BuildState): Promise<void> {
    const { ctx } = this;
    const signal = state.controller.signal;
    const tag = `${snapshotRepo(ctx)}:${state.snapshotId}`;
    // Each step's image, from the log: a failed or cancelled build removes them.
    const stepImages: string[] = [];
    state.record = { ...state.record, status: "running", startedAt: new Date().toISOString() };
    this.save(state);
    try {
      const bases = baseImages(state.request.dockerfileText, state.request.buildArgs);
      for (const base of bases) {
        if (!(await ctx.engine.inspectImage(base))) {
          throw new StrataError("image_not_found", `base image '${base}' is not in the engine (Strata never pulls images)`);
        }
      }
      const imageId = await ctx.engine.build(
        createReadStream(state.contextFile),
        {
          dockerfile: state.request.dockerfile,
          buildArgs: state.request.buildArgs,
          labels: { [labelKeys.server]: ctx.serverId, [labelKeys.snapshot]: state.snapshotId },
          tag,
        },
        (line) => {
          const step = stepImage(line);
          if (step) stepImages.push(step);
          this.emit(state, { type: "log", line });
        },
        signal,
      );
      if (signal.aborted) throw new StrataError("internal", "cancelled");
      const snapshot = await this.register(state, imageId, bases[bases.length - 1]);
      this.finish(state, "succeeded", undefined, snapshot);
    } catch (error) {
      await ctx.engine.removeImage(tag, true).catch(() => undefined);
      await this.removeStepImages(stepImages.reverse(), signal.aborted);
      if (signal.aborted) {
        this.finish(state, "cancelled", { code: "cancelled", message: "the build was cancelled" });
        return;
      }
      const failure = error instanceof BuildFailure
        ? { code: "build_failed", message: error.message }
        : (() => {
          const strataError = engineError(error, "build");
          return { code: strataError.code, message: strataError.message };
        })();
      this.emit(state, { type: "log", line: `error: ${failure.message}` });
      this.finish(state, "failed", failure);
    } finally {
      rmSync(state.contextFile, { force: true });
    }
  }

  /**
   * Removes the images of a build that did not finish, newest first. A
   * cancelled build's last container may still be stopping, holding its
   * image, so removals are retried for a while; an image that other images
   * build on is refused by the engine and stays (it is someone's cache).
   */
  private async removeStepImages(images: string[], cancelled: boolean): Promise<void> {
    // Only untagged images: a FROM step's image is a base image someone tagged, never ours to remove.
    const ours: string[] = [];
    for (const image of images) {
      const info = await this.ctx.engine.inspectImage(image);
      if (info && !info.repoTags.length && !info.repoDigests.length) ours.push(info.id);
    }
    let left = ours;
    for (let attempt = 0; attempt < (cancelled ? 40 : 1) && left.length; attempt++) {
      const still: string[] = [];
      for (const image of left) {
        const removed = await this.ctx.engine.removeImage(image, false).catch(() => false);
        if (!removed && (await this.ctx.engine.inspectImage(image))) still.push(image);
      }
      left = still;
      if (left.length) await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** The built image as a ready container snapshot; with replace, the name moves to it. */
  private async register(state: BuildState, imageId: string, base: string | undefined): Promise<Snapshot> {
    const { ctx } = this;
    const image = await ctx.engine.inspectImage(imageId);
    if (!image) throw new StrataError("internal", `the built image ${imageId} vanished`);
    const baseImage = base ? await ctx.engine.inspectImage(base) : null;
    const name = state.request.name;
    if (name) {
      const owner = ctx.index.snapshotNameOwner(name);
      if (owner && !state.request.replace) throw new StrataError("snapshot_name_taken", `a snapshot named '${name}' was created meanwhile`);
      if (owner) {
        const previous = ctx.index.findSnapshot(owner)!;
        const { name: _dropped, ...unnamed } = previous;
        ctx.snapshots.writeRecord(unnamed);
        ctx.index.putSnapshot(unnamed);
      }
    }
    const manifest: ManifestV1 = {
      schemaVersion: 1,
      id: state.snapshotId,
      kind: "container",
      sandboxId: "",
      parent: null,
      baseImage: { ref: base ?? "scratch", digest: baseImage?.id ?? "" },
      labels: state.request.labels,
      content: {
        imageId,
        sizeBytes: Math.max(0, image.sizeBytes - (baseImage?.sizeBytes ?? 0)),
        imageSizeBytes: image.sizeBytes,
        layers: image.layers,
      },
      createdAt: state.record.createdAt,
    };
    const record = markReady(ctx, manifest, name ? { name } : {});
    state.record = { ...state.record, architecture: image.architecture };
    return record;
  }
}

/** The image a classic-builder step made, from its ` ---> <id>` log line. */
function stepImage(line: string): string | undefined {
  return /^ ---> ([0-9a-f]{12,64})$/.exec(line)?.[1];
}

/** The step images a build's log names, in order. */
function stepImagesIn(events: BuildLogEvent[]): string[] {
  return events.flatMap((event) => {
    const step = event.type === "log" ? stepImage(event.line) : undefined;
    return step ? [step] : [];
  });
}
