// The server is killed (SIGKILL) in the middle of a snapshot and of a create;
// after a restart every record is resolved and nothing is orphaned.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";
import { Strata } from "@strata/sdk";
import { baseImage, eventually, startTestServer } from "../harness.js";

const bin = fileURLToPath(new URL("../../../packages/cli/bin/strata.js", import.meta.url));

async function serveInChild(home: string): Promise<{ child: ChildProcess; strata: Strata }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(process.execPath, [bin, "serve", "--port", String(port), "--home", home], { stdio: "ignore" });
  const strata = new Strata({ baseUrl: `http://127.0.0.1:${port}` });
  await eventually(async () => strata.health().then(() => true, () => false), 15000, "server start");
  return { child, strata };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
}

test("SIGKILL during a snapshot and a create: restart resolves both, leaves no orphan", async () => {
  const home = mkdtempSync(join(tmpdir(), "strata-crash-"));
  const { child, strata } = await serveInChild(home);
  const source = await strata.sandboxes.create({ image: baseImage, name: "crash-source" });
  await source.exec("dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null");
  const done = await (await source.snapshot({ name: "before-crash" })).waitUntilReady();

  const snapshot = await source.snapshot({ name: "during-crash" });
  void strata.sandboxes.create({ image: baseImage, name: "half-made" }).catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 150));
  child.kill("SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));

  const t = await startTestServer({}, home);
  try {
    // The engine may still be committing; the server waits for it, then settles.
    const resolved = await (await t.strata.snapshots.get(snapshot.id)).waitUntilReady({ timeoutMs: 60000 }).catch(() => t.strata.snapshots.get(snapshot.id));
    assert.ok(resolved.status === "ready" || resolved.status === "failed", `status ${resolved.status}`);
    if (resolved.status === "failed") assert.equal(resolved.info.error?.code, "interrupted");
    assert.equal((await t.strata.snapshots.get("before-crash")).info.digest, done.info.digest);
    assert.equal((await t.strata.snapshots.list({ status: "creating" })).snapshots.length, 0);

    // The create that never got an answer is either whole or gone.
    const sandboxes = await t.strata.sandboxes.list();
    for (const sandbox of sandboxes) {
      await eventually(async () => (await sandbox.refresh()).status === "running", 60000, `${sandbox.info.name} running`);
    }
    // a container the engine finished making after the create was undone is swept
    await eventually(async () => (await t.containers()) === sandboxes.length, 15000, "no orphan container");

    // An engine left committing after the kill may still produce an image: gc takes it.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await t.strata.gc();
    const owned = new Set((await t.strata.snapshots.list()).snapshots.map((s) => s.info.imageId).filter(Boolean));
    const images = await t.server.context.engine.listImages({ "dev.strata.server": t.server.context.serverId, "dev.strata.snapshot": "" });
    for (const image of images) assert.ok(owned.has(image.id), `image ${image.id} is owned by a record`);
    assert.equal(filesUnder(home).filter((file) => file.endsWith(".strata-tmp")).length, 0);
    assert.deepEqual(readdirSync(join(home, "trash")), []);

    // a ready snapshot survived intact and restores
    const restored = await t.strata.sandboxes.create({ snapshotId: "before-crash" });
    assert.equal((await restored.exec("wc -c < /big")).stdout.trim(), String(200 * 1024 * 1024));
    const manifest = JSON.parse(readFileSync(join(home, "snapshots", done.id, "manifest.json"), "utf8")) as { id: string };
    assert.equal(manifest.id, done.id);
    for (const s of (await t.strata.snapshots.list()).snapshots) await s.delete({ force: true });
  } finally {
    await t.close();
  }
});
