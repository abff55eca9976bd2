// The baseline: the same work sent straight to the Docker Engine API over its
// socket with node's http module, sharing no code with Strata.
import http from "node:http";

const agent = new http.Agent({ keepAlive: true });
const socketPath = (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");

function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
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
  const { json } = await call("POST", "/containers/create", { Image: image, OpenStdin: true, HostConfig: { NetworkMode: "bridge" } });
  await call("POST", `/containers/${json.Id}/start`);
  return json.Id as string;
}

export async function rawRemove(containerId: string): Promise<void> {
  await call("DELETE", `/containers/${containerId}?force=true&v=true`);
}

/** `docker commit` of a container, pausing it; returns the image id. */
export async function rawCommit(containerId: string): Promise<string> {
  const { json } = await call("POST", `/commit?container=${containerId}&pause=true`);
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
