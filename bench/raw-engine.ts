// The baseline: the same work sent straight to the Docker Engine API over its
// socket with node's http module, sharing no code with Strata.
import { randomUUID } from "node:crypto";
import http from "node:http";

const agent = new http.Agent({ keepAlive: true });
const socketPath = (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");

/**
 * The label every container and image the bench makes straight on the engine
 * carries, naming this bench run, so its cleanup finds them even after a
 * scenario failed midway.
 */
export const benchLabel = { "dev.strata.bench": (process.env.BENCH_RUN ??= randomUUID()) };

export function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { socketPath, agent, method, path, headers: body ? { "content-type": "application/json" } : {} },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if ((response.statusCode ?? 0) >= 400) reject(new Error(`${method} ${path}: ${text}`));
          else resolve({ status: response.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    request.on("error", reject);
    request.end(body ? JSON.stringify(body) : undefined);
  });
}

/** Runs a command with attached output and returns its exit code, as `docker exec` does. */
export async function rawExec(containerId: string, cmd: string[]): Promise<number> {
  const { json } = await call("POST", `/containers/${containerId}/exec`, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
  await new Promise<void>((resolve, reject) => {
    const request = http.request({
      socketPath, method: "POST", path: `/exec/${json.Id}/start`,
      headers: { "content-type": "application/json", connection: "Upgrade", upgrade: "tcp" },
    });
    request.on("upgrade", (_response, socket) => {
      socket.on("data", () => {});
      socket.on("end", () => {
        socket.destroy();
        resolve();
      });
      socket.on("error", reject);
    });
    request.on("error", reject);
    request.end(JSON.stringify({ Detach: false, Tty: false }));
  });
  for (;;) {
    const info = await call("GET", `/exec/${json.Id}/json`);
    if (!info.json.Running) return info.json.ExitCode as number;
  }
}

export async function rawCreateStart(image: string): Promise<string> {
  const { json } = await call("POST", "/containers/create", { Image: image, OpenStdin: true, Labels: benchLabel, HostConfig: { NetworkMode: "bridge" } });
  await call("POST", `/containers/${json.Id}/start`);
  return json.Id as string;
}

export async function rawRemove(containerId: string): Promise<void> {
  await call("DELETE", `/containers/${containerId}?force=true&v=true`);
}

/** `docker commit` of a container, pausing it; returns the image id. */
export async function rawCommit(containerId: string): Promise<string> {
  const { json } = await call("POST", `/commit?container=${containerId}&pause=true`, { Labels: benchLabel });
  return json.Id as string;
}

export async function rawRemoveImage(imageId: string): Promise<void> {
  await call("DELETE", `/images/${imageId}?force=true`);
}

/** The container the engine holds for a Strata sandbox (found by its label). */
export async function listContainersBySandbox(sandboxId: string): Promise<string | undefined> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`dev.strata.sandbox=${sandboxId}`] }));
  const { json } = await call("GET", `/containers/json?all=true&filters=${filters}`);
  return (json as { Id: string }[])[0]?.Id;
}

/** Where the engine mounts a running container's filesystem on this host. */
export async function mergedDir(containerId: string): Promise<string> {
  const { json } = await call("GET", `/containers/${containerId}/json`);
  return json.GraphDriver.Data.MergedDir as string;
}

/**
 * Removes everything this bench run left on the engine: containers and images
 * of its servers (their label, their snapshot repository) and of its raw
 * scenarios (the bench label); images by tag and then by id, forced. Never
 * touches anything else. Returns how many it removed.
 */
export async function removeBenchLeftovers(serverIds: string[]): Promise<number> {
  const ours = (labels: Record<string, string> | null | undefined, refs: string[] = []) =>
    (!!labels && (serverIds.includes(labels["dev.strata.server"] ?? "") || labels["dev.strata.bench"] === benchLabel["dev.strata.bench"]))
    || refs.some((ref) => serverIds.some((id) => ref.startsWith(`strata/snapshots-${id}:`)));
  let removed = 0;
  const containers = (await call("GET", "/containers/json?all=true")).json as { Id: string; Labels?: Record<string, string> | null }[];
  for (const container of containers.filter((c) => ours(c.Labels))) {
    await call("DELETE", `/containers/${container.Id}?force=true&v=true`).then(() => removed++, () => undefined);
  }
  const images = (await call("GET", "/images/json?all=true")).json as { Id: string; Labels?: Record<string, string> | null; RepoTags?: string[] | null; RepoDigests?: string[] | null }[];
  for (const image of images.filter((i) => ours(i.Labels, i.RepoTags ?? []))) {
    for (const ref of [...(image.RepoTags ?? []), ...(image.RepoDigests ?? [])].filter((r) => !r.startsWith("<none>"))) {
      await call("DELETE", `/images/${encodeURIComponent(ref)}`).catch(() => undefined);
    }
    await call("DELETE", `/images/${image.Id}?force=true`).then(() => removed++, () => undefined);
  }
  return removed;
}
