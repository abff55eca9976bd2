// The engine as the tests see it, asked directly over its API (not through
// Strata's own client): what a test run's servers made, and its removal.
//
// A run is scoped by the servers it started: every test server's id is written
// to the run's ledger (a directory the test runner names in
// STRATA_TEST_RUN_DIR), so the end-of-run check looks only at what this run
// made and never at other runs or at anything that existed before.
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";

/** The label that ties containers and images to the server that made them. */
const serverLabel = "dev.strata.server";

export interface EngineContainer {
  id: string;
  labels: Record<string, string>;
  state: string;
}

export interface EngineImage {
  id: string;
  labels: Record<string, string>;
  tags: string[];
  digests: string[];
}

function socketPath(): string {
  const host = process.env.DOCKER_HOST;
  if (!host) return "/var/run/docker.sock";
  if (host.startsWith("unix://")) return host.slice("unix://".length);
  if (host.startsWith("/")) return host;
  throw new Error(`the tests' engine checks need a unix socket DOCKER_HOST, got ${host}`);
}

/** One call to the engine API; resolves to the status and parsed JSON body. Bounded by timeoutMs. */
async function call(method: string, path: string, timeoutMs = 60_000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socketPath(), method, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          // plain text error
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`engine ${method} ${path} did not answer in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** Every container on the engine, running or not. */
export async function engineContainers(): Promise<EngineContainer[]> {
  const { status, body } = await call("GET", "/containers/json?all=1");
  if (status !== 200) throw new Error(`engine container list: ${status} ${JSON.stringify(body)}`);
  return (body as { Id: string; Labels?: Record<string, string> | null; State: string }[]).map((c) => ({ id: c.Id, labels: c.Labels ?? {}, state: c.State }));
}

/** Every image on the engine, intermediate ones included. */
export async function engineImages(): Promise<EngineImage[]> {
  const { status, body } = await call("GET", "/images/json?all=1");
  if (status !== 200) throw new Error(`engine image list: ${status} ${JSON.stringify(body)}`);
  return (body as { Id: string; Labels?: Record<string, string> | null; RepoTags?: string[] | null; RepoDigests?: string[] | null }[]).map((i) => ({
    id: i.Id,
    labels: i.Labels ?? {},
    tags: (i.RepoTags ?? []).filter((tag) => tag !== "<none>:<none>"),
    digests: (i.RepoDigests ?? []).filter((digest) => !digest.startsWith("<none>")),
  }));
}

/** Whether the engine still holds this image (by id or reference). */
export async function engineHasImage(ref: string): Promise<boolean> {
  const { status } = await call("GET", `/images/${encodeURIComponent(ref)}/json`);
  return status === 200;
}

/** Removes a container (forced); a missing one is fine, one another caller is removing is waited for. */
export async function removeEngineContainer(id: string): Promise<void> {
  const { status, body } = await call("DELETE", `/containers/${id}?force=1&v=1`);
  if (status === 204 || status === 404) return;
  if (status === 409 && /already in progress/.test(JSON.stringify(body))) {
    for (let i = 0; i < 600; i++) {
      if ((await call("GET", `/containers/${id}/json`)).status === 404) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`engine container remove ${id}: ${status} ${JSON.stringify(body)}`);
}

/** Removes an image reference or id; false when the engine refuses (in use), a missing one counts as removed. */
export async function removeEngineImage(ref: string, force = false): Promise<boolean> {
  const { status } = await call("DELETE", `/images/${encodeURIComponent(ref)}?force=${force ? 1 : 0}`);
  return status === 200 || status === 404;
}

/** Whether a container or image belongs to one of these servers (by label or by the server's snapshot repository). */
function madeBy(serverIds: ReadonlySet<string>, labels: Record<string, string>, refs: string[] = []): boolean {
  const label = labels[serverLabel];
  if (label && serverIds.has(label)) return true;
  return refs.some((ref) => {
    const match = /^strata\/snapshots-([0-9a-f-]{36})[:@]/.exec(ref);
    return !!match && serverIds.has(match[1]!);
  });
}

export interface Leftovers {
  containers: EngineContainer[];
  images: EngineImage[];
}

/** What the engine holds that these servers made. */
export async function leftovers(serverIds: ReadonlySet<string>): Promise<Leftovers> {
  if (!serverIds.size) return { containers: [], images: [] };
  const [containers, images] = await Promise.all([engineContainers(), engineImages()]);
  return {
    containers: containers.filter((c) => madeBy(serverIds, c.labels)),
    images: images.filter((i) => madeBy(serverIds, i.labels, [...i.tags, ...i.digests])),
  };
}

/** Whether an image carries a snapshot tag of a server not among these (an import or a pull by another server). */
function taggedByOthers(serverIds: ReadonlySet<string>, image: EngineImage): boolean {
  return image.tags.some((tag) => {
    const match = /^strata\/snapshots-([0-9a-f-]{36}):/.exec(tag);
    return !!match && !serverIds.has(match[1]!);
  });
}

/**
 * Removes what these servers made: containers first, then images (each tag,
 * then the id). Without force an image something else still uses stays, and
 * so does one another server has tagged as its own snapshot (that server's
 * teardown, or the last one's sweep, takes it); returns what is left.
 */
export async function removeLeftovers(serverIds: ReadonlySet<string>, force = false): Promise<Leftovers> {
  let found = await leftovers(serverIds);
  // A paused container is one the engine is committing (a server killed mid-snapshot leaves the engine
  // at it): its image appears when the commit ends, so wait for that (bounded) before removing.
  for (let i = 0; i < 600 && found.containers.some((c) => c.state === "paused"); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    found = await leftovers(serverIds);
  }
  await Promise.all(found.containers.map((c) => removeEngineContainer(c.id).catch(() => undefined)));
  // Newest layers first does not matter to the engine for unrelated images; a
  // child image is refused while it exists, so repeat while something goes.
  const removable = (all: EngineImage[]) => (force ? all : all.filter((image) => !taggedByOthers(serverIds, image)));
  let images = removable((await leftovers(serverIds)).images);
  for (let round = 0; round < 5 && images.length; round++) {
    for (const image of images) {
      for (const ref of [...image.tags, ...image.digests]) await removeEngineImage(ref, false).catch(() => false);
      await removeEngineImage(image.id, force).catch(() => false);
    }
    const left = removable((await leftovers(serverIds)).images);
    if (left.length === images.length) break;
    images = left;
  }
  return leftovers(serverIds);
}

/** The run's ledger directory, when a runner set one. */
export function runDir(): string | undefined {
  return process.env.STRATA_TEST_RUN_DIR || undefined;
}

/** Records a server id in the run's ledger so the end-of-run check looks for what it made. */
export function recordServer(serverId: string): void {
  const dir = runDir();
  if (!dir) return;
  mkdirSync(join(dir, "servers"), { recursive: true });
  writeFileSync(join(dir, "servers", serverId), "");
}

/** The server ids a run's ledger holds. */
export function recordedServers(dir: string): Set<string> {
  try {
    return new Set(readdirSync(join(dir, "servers")));
  } catch {
    return new Set();
  }
}

/** A one-line description of leftovers for a failure message. */
export function describe(found: Leftovers): string {
  const parts = [
    ...found.containers.map((c) => `container ${c.id.slice(0, 12)} (${c.state}, server ${c.labels[serverLabel] ?? "?"})`),
    ...found.images.map((i) => `image ${i.id.slice(7, 19)} ${[...i.tags, ...i.digests].join(" ") || "(untagged)"} (server ${i.labels[serverLabel] ?? "?"})`),
  ];
  return parts.join("; ");
}
