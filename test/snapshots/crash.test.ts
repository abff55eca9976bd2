// The server is killed (SIGKILL) in the middle of a snapshot and of a create;
// after a restart every record is resolved and nothing is orphaned, by
// recovery alone. A crash's other leftover, an empty snapshot directory, is
// removed at startup.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { Strata } from "@strata/sdk";
import { engineContainers, engineHasImage, engineImages, recordServer, removeLeftovers } from "../engine.js";
import { context, removeContexts } from "../builds/contexts.js";
import { baseImage, bounded, eventually, startTestServer, test } from "../harness.js";

const bin = fileURLToPath(new URL("../../../packages/cli/bin/strata.js", import.meta.url));

/** `strata serve` in a child process on a port the OS picks; its URL is read from its "listening" log line. */
async function serveInChild(home: string): Promise<{ child: ChildProcess; strata: Strata; serverId: string }> {
  const child = spawn(process.execPath, [bin, "serve", "--port", "0", "--home", home], { stdio: ["ignore", "pipe", "ignore"] });
  try {
    const url = await bounded(new Promise<string>((resolve, reject) => {
      let text = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8");
        for (const line of text.split("\n")) {
          const event = /^\{.*"event":"listening".*\}$/.test(line) ? (JSON.parse(line) as { url: string }) : undefined;
          if (event) resolve(event.url);
        }
      });
      child.once("exit", (code) => reject(new Error(`strata serve exited (${code}) before listening`)));
    }), 60_000, "strata serve start");
    child.stdout!.removeAllListeners("data");
    child.stdout!.resume();
    const serverId = readFileSync(join(home, "server-id"), "utf8").trim();
    recordServer(serverId);
    return { child, strata: new Strata({ baseUrl: url }), serverId };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
}

test("SIGKILL during a snapshot and a create: restart resolves both, leaves no orphan", async (t) => {
  const home = mkdtempSync(join(tmpdir(), "strata-crash-"));
  const { child, strata, serverId } = await serveInChild(home);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  t.after(async () => {
    // whatever failed: the child goes (by its own pid), then everything its server made
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
    await removeLeftovers(new Set([serverId]), true);
    rmSync(home, { recursive: true, force: true });
  });
  const source = await strata.sandboxes.create({ image: baseImage, name: "crash-source" });
  await source.exec("dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null");
  const done = await (await source.snapshot({ name: "before-crash" })).waitUntilReady();
  // a directory whose restore takes the create a while: the create is in flight for certain when the kill lands
  await source.exec("mkdir -p /slow && dd if=/dev/urandom of=/slow/data bs=1M count=150 2>/dev/null");
  const slowRestore = await (await source.snapshotDirectory("/slow", { name: "slow-restore" })).waitUntilReady();
  await source.exec("dd if=/dev/urandom of=/big2 bs=1M count=200 2>/dev/null");

  // the commit pauses the source; then the create starts and makes its container; the kill lands while both are under way
  const snapshot = await source.snapshot({ name: "during-crash" });
  const ours = async () => (await engineContainers()).filter((c) => c.labels["dev.strata.server"] === serverId);
  await eventually(async () => (await ours()).some((c) => c.labels["dev.strata.sandbox"] === source.id && c.state === "paused"), 60_000, "the commit to pause the source");
  let answered = false;
  const creating = strata.sandboxes.create({ image: baseImage, name: "half-made", directorySnapshots: [{ snapshotId: slowRestore.id }] })
    .then(() => (answered = true), () => (answered = true));
  await eventually(async () => answered || (await ours()).length >= 2, 60_000, "the create's container");
  const answeredBeforeKill = answered;
  child.kill("SIGKILL");
  await exited;
  await creating; // (fails: the server is gone)
  assert.equal(answeredBeforeKill, false, "the create had answered before the kill: it was not in flight");
  const record = JSON.parse(readFileSync(join(home, "snapshots", snapshot.id, "record.json"), "utf8")) as { status: string };
  assert.equal(record.status, "creating", "the kill landed after the snapshot finished");

  const restarted = await startTestServer({}, home);
  try {
    // The engine may still be committing; the server waits for it, then settles.
    const resolved = await (await restarted.strata.snapshots.get(snapshot.id)).waitUntilReady().then((s) => s.info, () => restarted.strata.snapshots.get(snapshot.id).then((s) => s.info));
    assert.ok(resolved.status === "ready" || resolved.status === "failed", `status ${resolved.status}`);
    if (resolved.status === "failed") assert.equal(resolved.error?.code, "interrupted");
    assert.equal((await restarted.strata.snapshots.get("before-crash")).info.digest, done.info.digest);
    assert.equal((await restarted.strata.snapshots.list({ status: "creating" })).snapshots.length, 0);

    // The create that never got an answer is either whole or gone.
    const sandboxes = await restarted.strata.sandboxes.list();
    for (const sandbox of sandboxes) {
      await eventually(async () => (await sandbox.refresh()).status === "running", 60000, `${sandbox.info.name} running`);
    }
    // a container the engine finished making after the create was undone is swept
    await eventually(async () => (await restarted.containers()) === sandboxes.length, 60000, "no orphan container");

    // Recovery alone (no gc): every image this server made is owned by a record.
    const owned = new Set((await restarted.strata.snapshots.list()).snapshots.map((s) => s.info.imageId).filter(Boolean));
    const images = (await engineImages()).filter((image) => image.labels["dev.strata.server"] === serverId);
    for (const image of images) assert.ok(owned.has(image.id), `image ${image.id} (${image.tags.join(" ")}) is owned by a record`);
    assert.equal(filesUnder(home).filter((file) => file.endsWith(".strata-tmp")).length, 0);
    assert.deepEqual(readdirSync(join(home, "trash")), []);

    // a ready snapshot survived intact and restores
    const restored = await restarted.strata.sandboxes.create({ snapshotId: "before-crash" });
    assert.equal((await restored.exec("wc -c < /big")).stdout.trim(), String(200 * 1024 * 1024));
    const manifest = JSON.parse(readFileSync(join(home, "snapshots", done.id, "manifest.json"), "utf8")) as { id: string };
    assert.equal(manifest.id, done.id);
  } finally {
    await restarted.close();
  }
});

test("an empty snapshot directory a crash left is removed at startup, not reported malformed", async () => {
  const first = await startTestServer();
  await first.stop();
  const empty = randomUUID();
  const onlyTemp = randomUUID();
  mkdirSync(join(first.home, "snapshots", empty));
  mkdirSync(join(first.home, "snapshots", onlyTemp));
  writeFileSync(join(first.home, "snapshots", onlyTemp, "record.json.strata-tmp"), "{torn");
  const again = await first.restart();
  try {
    assert.equal(existsSync(join(again.home, "snapshots", empty)), false);
    assert.equal(existsSync(join(again.home, "snapshots", onlyTemp)), false);
    assert.deepEqual(again.logs.filter((line) => line.event === "snapshot_malformed"), []);
    assert.deepEqual(
      again.logs.filter((line) => line.event === "snapshot_dir_removed").map((line) => line.snapshotId).sort(),
      [empty, onlyTemp].sort(),
    );
    assert.deepEqual((await again.strata.snapshots.reindex()).malformed, []);
  } finally {
    await again.close();
  }
});

test("SIGKILL during an exec: the restarted server ends the command left running (runc)", async () => {
  const home = mkdtempSync(join(tmpdir(), "strata-test-"));
  const first = await serveInChild(home);
  let again: Awaited<ReturnType<typeof startTestServer>> | undefined;
  try {
    const sandbox = await first.strata.sandboxes.create({ image: baseImage });
    const sleeping = async (strata: Strata) => (await (await strata.sandboxes.get(sandbox.id)).exec(["ps", "-o", "args"])).stdout.split("\n").includes("sleep 600");
    void sandbox.exec(["sh", "-c", "sleep 600"], { timeoutMs: 900_000 }).catch(() => undefined);
    await eventually(() => sleeping(first.strata), 60_000, "the command to run");
    first.child.kill("SIGKILL");
    await new Promise((resolve) => (first.child.exitCode !== null ? resolve(null) : first.child.once("exit", resolve)));
    assert.equal((await engineContainers()).filter((c) => c.labels["dev.strata.server"] === first.serverId && c.state === "running").length, 1, "the kill left the sandbox running");

    again = await startTestServer({}, home);
    assert.equal(await sleeping(again.strata), false, "recovery ended the command nobody waits for");
    assert.equal(again.logs.filter((line) => line.event === "stray_execs_ended").length, 1);
  } finally {
    first.child.kill("SIGKILL");
    if (again) await again.close();
    else rmSync(home, { recursive: true, force: true });
  }
});

test("SIGKILL during a build: the restarted server removes the step images the build made", async () => {
  const home = mkdtempSync(join(tmpdir(), "strata-test-"));
  const first = await serveInChild(home);
  let again: Awaited<ReturnType<typeof startTestServer>> | undefined;
  try {
    const dir = context({
      blob: "x".repeat(1024 * 1024),
      // the RUN step waits for a file that never comes: the kill lands while it runs, after COPY's image exists
      Dockerfile: `FROM ${baseImage}\nCOPY blob /blob\nRUN while [ ! -e /never ]; do sleep 0.1; done\n`,
    });
    const steps: string[] = [];
    let running = false;
    const build = first.strata.snapshots.build({
      context: dir,
      onLog: (line) => {
        const step = /^ ---> ([0-9a-f]{12,64})$/.exec(line)?.[1];
        if (step) steps.push(step);
        if (/Running in/.test(line)) running = true;
      },
    });
    build.catch(() => undefined);
    await eventually(async () => running, 120_000, "the RUN step to run");
    const copied = steps.at(-1)!;
    assert.equal(await engineHasImage(copied), true, "COPY's image exists when the kill lands");
    first.child.kill("SIGKILL");
    await new Promise((resolve) => (first.child.exitCode !== null ? resolve(null) : first.child.once("exit", resolve)));

    again = await startTestServer({}, home);
    await eventually(async () => !(await engineHasImage(copied)), 60_000, "recovery to remove the killed build's step image");
  } finally {
    first.child.kill("SIGKILL");
    removeContexts();
    if (again) await again.close();
    else rmSync(home, { recursive: true, force: true });
  }
});
