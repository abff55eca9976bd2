// A notebook service checkpoints running gVisor sandboxes and resumes or forks
// them with their processes where they were.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import type { Sandbox } from "@strata/sdk";
import { baseImage, closeAll, errorCode, eventually, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
let other: TestServer;
before(async () => {
  t = await startTestServer();
  other = await startTestServer();
});
after(() => closeAll(t, other));

/**
 * A loop whose secret and count exist only in the shell's memory. It counts
 * one step each time the test drops /tmp/tick (and removes it) and writes
 * "secret count" to /tmp/state: the count moves only when the test says, so
 * every value below is exact, whatever the machine's speed.
 */
const counter = ["sh", "-c", 'secret="s$RANDOM$RANDOM"; i=0; echo "$secret $i" > /tmp/state; while true; do if [ -e /tmp/tick ]; then rm -f /tmp/tick; i=$((i+1)); echo "$secret $i" > /tmp/state; fi; sleep 0.05; done'];

async function state(sandbox: Sandbox): Promise<{ secret: string; count: number }> {
  // The loop truncates the file before it writes: a read in between sees it empty, so read again.
  let text = "";
  for (let tries = 0; !text && tries < 20; tries++) text = (await sandbox.exec(["cat", "/tmp/state"])).stdout.trim();
  const [secret = "", count = "-1"] = text.split(" ");
  return { secret, count: Number(count) };
}

/** The loop still runs on its own (slowCounter): waits until it counts past `from`; returns the count seen. */
async function keepsCounting(sandbox: Sandbox, from: number): Promise<number> {
  let latest = from;
  await eventually(async () => {
    latest = (await state(sandbox)).count;
    return latest > from;
  }, 60_000, "the loop to keep counting");
  return latest;
}

/** One step of the loop: drops the tick and waits until the loop has counted it; returns the new state. */
async function tick(sandbox: Sandbox): Promise<{ secret: string; count: number }> {
  const before = await state(sandbox);
  await sandbox.exec(["touch", "/tmp/tick"]);
  let after = before;
  await eventually(async () => {
    after = await state(sandbox);
    return after.count !== before.count;
  }, 60_000, "the loop to count the tick");
  assert.equal(after.count, before.count + 1, "one tick is one step");
  assert.equal(after.secret, before.secret, "the same process counted it");
  return after;
}

test("a counting loop carries on from where it was in the restored sandbox and in two forks; the source keeps running", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: counter });
  assert.equal(source.info.isolation, "gvisor");
  await eventually(async () => (await state(source)).count === 0, 60_000, "the loop to start");
  for (let i = 0; i < 3; i++) await tick(source);
  const before = await state(source);
  assert.equal(before.count, 3);

  const snapshot = await (await source.snapshot({ kind: "memory", name: "counting" })).waitUntilReady();
  assert.equal(snapshot.info.kind, "memory");
  assert.match(snapshot.info.contentDigest!, /^sha256:/);
  assert.match(snapshot.info.imageId!, /^sha256:/);
  assert.equal((await source.refresh()).status, "running");
  // the source is the same process, where it was, and still counting
  assert.deepEqual(await state(source), before);
  assert.deepEqual(await tick(source), { secret: before.secret, count: 4 });

  // the restored sandbox continues from the checkpoint: same secret, and the next step is 4 (a fresh start would count 1 with a new secret)
  const restored = await t.strata.sandboxes.create({ memorySnapshotId: "counting" });
  assert.equal(restored.info.isolation, "gvisor");
  assert.deepEqual(await state(restored), before, "restored at the checkpoint");
  assert.deepEqual(await tick(restored), { secret: before.secret, count: 4 });

  // forks of the source (now at 4) continue from 4, each on its own
  const { snapshotId: forkSnapshotId, sandboxes: forks } = await source.fork(2);
  assert.equal(forks.length, 2);
  const forkSnapshot = await t.strata.snapshots.get(forkSnapshotId);
  assert.equal(forkSnapshot.info.kind, "memory");
  assert.equal(forkSnapshot.info.status, "ready");
  assert.equal(forkSnapshot.info.sandboxId, source.id);
  for (const fork of forks) {
    assert.deepEqual(await state(fork), { secret: before.secret, count: 4 });
    assert.deepEqual(await tick(fork), { secret: before.secret, count: 5 });
  }
  await forks[0]!.exec(["sh", "-c", "echo mine > /tmp/only-in-fork-0"]);
  assert.equal((await forks[1]!.exec(["sh", "-c", "test -e /tmp/only-in-fork-0 || echo absent"])).stdout, "absent\n");
  assert.equal((await source.refresh()).status, "running");
  assert.deepEqual(await tick(source), { secret: before.secret, count: 5 });

  for (const s of [restored, ...forks, source]) await s.delete();
  await forkSnapshot.delete();
  assert.equal(await errorCode(t.strata.snapshots.get(forkSnapshotId)), "snapshot_not_found", "the fork's snapshot is deleted by its id");
  for (const s of (await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots) await s.delete({ force: true });
});

test("runc and stopped sandboxes are refused with a code that says why", async () => {
  const plain = await t.strata.sandboxes.create({ image: baseImage });
  assert.equal(await errorCode(plain.snapshot({ kind: "memory" })), "memory_snapshot_requires_gvisor");
  assert.equal(await errorCode(plain.fork(1)), "memory_snapshot_requires_gvisor");
  const stopped = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor" });
  await stopped.stop({ timeoutSeconds: 1 });
  assert.equal(await errorCode(stopped.snapshot({ kind: "memory" })), "sandbox_not_running");
  const fsOnly = await (await plain.snapshot()).waitUntilReady();
  assert.equal(await errorCode(t.strata.sandboxes.create({ memorySnapshotId: fsOnly.id })), "bad_request");
  await fsOnly.delete();
  await plain.delete();
  await stopped.delete();
});

test("a memory snapshot exported from one server restores on another", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: counter });
  await eventually(async () => (await state(source)).count === 0, 60_000, "the loop to start");
  await tick(source);
  await tick(source);
  const snapshot = await (await source.snapshot({ kind: "memory" })).waitUntilReady();
  const { secret } = await state(source);
  assert.ok((await snapshot.verify()).ok);
  const archive = new Uint8Array(await new Response(await snapshot.export()).arrayBuffer());
  await source.delete();
  await snapshot.delete();

  const { snapshot: imported } = await other.strata.snapshots.import(archive);
  assert.equal(imported.info.kind, "memory");
  const restored = await other.strata.sandboxes.create({ memorySnapshotId: imported.id });
  assert.deepEqual(await state(restored), { secret, count: 2 });
  assert.deepEqual(await tick(restored), { secret, count: 3 });
  await restored.delete();
  await imported.delete();
});

/** A loop that counts once a second into /tmp/state, its secret only in memory: for stories where the loop must run on its own while the server works (only "went on" is asserted, never how far). */
const slowCounter = ["sh", "-c", 'secret="s$RANDOM$RANDOM"; i=0; while true; do i=$((i+1)); echo "$secret $i" > /tmp/state; sleep 1; done'];

test("six memory snapshots and two forks in a row leave the source running, counting on from where it was each time", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: slowCounter });
  try {
    await eventually(async () => (await state(source)).count >= 1, 60_000, "the loop to start");
    const { secret } = await state(source);
    let last = (await state(source)).count;
    // Six snapshots with two forks among them: any order leaves the source running where it was.
    for (let round = 1; round <= 8; round++) {
      if (round === 3 || round === 6) {
        const { snapshotId, sandboxes: [fork] } = await source.fork(1);
        assert.equal((await state(fork!)).secret, secret, `round ${round}: the fork continues the same processes`);
        await fork!.delete();
        await (await t.strata.snapshots.get(snapshotId)).delete();
      } else {
        const snapshot = await (await source.snapshot({ kind: "memory" })).waitUntilReady({ timeoutMs: 60000 });
        assert.equal(snapshot.info.status, "ready", `round ${round}`);
      }
      assert.equal((await source.refresh()).status, "running", `round ${round}: the source is running`);
      const now = await state(source);
      assert.equal(now.secret, secret, `round ${round}: the same processes, not a fresh start`);
      assert.ok(now.count >= last, `round ${round}: the count went from ${last} back to ${now.count}`);
      last = await keepsCounting(source, now.count);
    }
    assert.deepEqual(t.logs.filter((line) => String(line.event).startsWith("memory_")), [], "no resume fell back");
    const snapshots = (await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots;
    assert.equal(snapshots.length, 6);
    assert.ok(snapshots.every((s) => s.info.status === "ready"));
    // The last one still restores.
    const restored = await t.strata.sandboxes.create({ memorySnapshotId: snapshots.sort((a, b) => a.info.createdAt.localeCompare(b.info.createdAt)).at(-1)!.id });
    assert.equal((await state(restored)).secret, secret);
    await restored.delete();
  } finally {
    await source.delete().catch(() => undefined);
    for (const s of (await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots) await s.delete({ force: true });
  }
});

test("one memory snapshot restores into several sandboxes at once", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: slowCounter });
  try {
    await eventually(async () => (await state(source)).count >= 1, 60_000, "the loop to start");
    const snapshot = await (await source.snapshot({ kind: "memory" })).waitUntilReady({ timeoutMs: 60000 });
    const { secret } = await state(source);
    const settled = await Promise.allSettled([1, 2, 3].map(() => t.strata.sandboxes.create({ memorySnapshotId: snapshot.id })));
    const made = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    try {
      assert.deepEqual(settled.map((s) => (s.status === "fulfilled" ? "ok" : String((s.reason as Error).message).slice(0, 300))), ["ok", "ok", "ok"]);
      for (const restored of made) assert.equal((await state(restored)).secret, secret);
    } finally {
      for (const restored of made) await restored.delete();
    }
  } finally {
    await source.delete().catch(() => undefined);
    for (const s of (await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots) await s.delete({ force: true });
  }
});

test("a memory snapshot while a command runs is refused with sandbox_busy; the command and the source are untouched", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: slowCounter });
  try {
    await eventually(async () => (await state(source)).count >= 1, 60_000, "the loop to start");
    const { secret } = await state(source);
    // The command waits for a file rather than a clock, so no timing decides the path.
    const running = source.exec(["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; echo done"]);
    const engine = t.server.context.engine;
    const containerOf = async () => (await t.server.context.index.findSandbox(source.id))!.containerId!;
    await eventually(async () => (await engine.runningExecs(await containerOf())) > 0, 10000, "the command to start");

    assert.equal(await errorCode(source.snapshot({ kind: "memory" })), "sandbox_busy");
    assert.equal(await errorCode(source.fork(1)), "sandbox_busy");
    assert.equal((await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots.length, 0, "no snapshot record was left");

    const beforeGo = await state(source);
    assert.equal(beforeGo.secret, secret);
    await source.exec(["touch", "/tmp/go"]);
    const result = await running;
    assert.deepEqual({ exitCode: result.exitCode, stdout: result.stdout, timedOut: result.timedOut }, { exitCode: 0, stdout: "done\n", timedOut: false });
    assert.equal((await source.refresh()).status, "running");
    const after = await state(source);
    assert.equal(after.secret, secret, "the source kept its processes");
    assert.ok(after.count >= beforeGo.count, `the count went from ${beforeGo.count} back to ${after.count}`);

    // Once the command has ended, the snapshot is taken and restores.
    const snapshot = await (await source.snapshot({ kind: "memory" })).waitUntilReady({ timeoutMs: 60000 });
    const restored = await t.strata.sandboxes.create({ memorySnapshotId: snapshot.id });
    try {
      assert.equal((await state(restored)).secret, secret);
    } finally {
      await restored.delete();
    }
    assert.equal((await source.refresh()).status, "running");
    assert.equal((await state(source)).secret, secret);
  } finally {
    await source.delete().catch(() => undefined);
    for (const s of (await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots) await s.delete({ force: true });
  }
});

test("a server stopped between a checkpoint and the resume resumes the source from the checkpoint on restart, never afresh", async () => {
  const first = await startTestServer();
  let second: TestServer | undefined;
  try {
    const source = await first.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: slowCounter });
    await eventually(async () => (await state(source)).count >= 1, 60_000, "the loop to start");
    const { secret } = await state(source);
    // One real memory snapshot first: the source then runs in a container restored once already, which gVisor cannot restore again in place.
    const earlier = await (await source.snapshot({ kind: "memory" })).waitUntilReady({ timeoutMs: 60000 });
    assert.equal((await state(source)).secret, secret);
    // What a crash right after the checkpoint leaves: a creating memory record and a stopped, checkpointed source.
    const ctx = first.server.context;
    const row = ctx.index.findSandbox(source.id)!;
    const record = {
      id: randomUUID(), kind: "memory" as const, status: "creating" as const, sandboxId: row.id, labels: {},
      baseImage: { ref: row.baseRef, digest: row.baseDigest }, createdAt: new Date().toISOString(),
      settings: { isolation: row.isolation, network: row.network, resources: row.resources },
    };
    ctx.index.insertSnapshot(record);
    ctx.snapshots.writeRecord(record);
    await ctx.engine.checkpoint(row.containerId!, `strata-${record.id}`);
    assert.equal((await ctx.engine.inspectContainer(row.containerId!))?.state, "exited");
    await first.stop();

    second = await first.restart();
    const snapshot = await second.strata.snapshots.get(record.id);
    await assert.rejects(snapshot.waitUntilReady({ timeoutMs: 60000 }), (error: { code: string }) => error.code === "interrupted");
    assert.match(snapshot.info.error!.message, /resumed from the checkpoint/);
    const again = await second.strata.sandboxes.get(source.id);
    assert.equal(again.status, "running");
    const now = await state(again);
    assert.equal(now.secret, secret, "the same processes, not a fresh start");
    await keepsCounting(again, now.count);
    await (await second.strata.snapshots.get(earlier.id)).delete({ force: true });
  } finally {
    const serverId = first.server.context.serverId;
    await second?.close();
    await first.close();
    const images = execFileSync("docker", ["images", "-q", "--no-trunc", "--filter", `label=dev.strata.server=${serverId}`], { encoding: "utf8" }).split("\n").filter(Boolean);
    if (images.length) execFileSync("docker", ["rmi", "-f", ...new Set(images)]);
  }
});

test("restores and forks of a memory snapshot keep the source's network and limits", async () => {
  const resources = { memoryMb: 512 };
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", network: false, resources, cmd: slowCounter });
  const made = [source];
  try {
    await eventually(async () => (await state(source)).count >= 1, 60_000, "the loop to start");
    const snapshot = await (await source.snapshot({ kind: "memory" })).waitUntilReady({ timeoutMs: 60000 });
    assert.deepEqual(snapshot.info.settings, { isolation: "gvisor", network: false, resources });
    const restored = await t.strata.sandboxes.create({ memorySnapshotId: snapshot.id });
    made.push(restored);
    const { sandboxes: [fork] } = await source.fork(1);
    made.push(fork!);
    await source.refresh();
    for (const sandbox of [source, restored, fork!]) {
      assert.deepEqual({ isolation: sandbox.info.isolation, network: sandbox.info.network, resources: sandbox.info.resources }, { isolation: "gvisor", network: false, resources }, sandbox.id);
    }
  } finally {
    for (const sandbox of made.reverse()) await sandbox.delete().catch(() => undefined);
    for (const s of (await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots) await s.delete({ force: true });
  }
});

test("a resume that fails fails the snapshot with checkpoint_restore_failed and leaves the source stopped, not restarted afresh", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: slowCounter });
  try {
    await eventually(async () => (await state(source)).count >= 1, 60_000, "the loop to start");
    const { secret } = await state(source);
    // Make the resume's new container impossible: a memory limit below the engine's minimum in the sandbox's record.
    const db = (t.server.context.index as unknown as { db: { prepare(sql: string): { run(...args: unknown[]): unknown } } }).db;
    db.prepare("UPDATE sandboxes SET resources = ? WHERE id = ?").run(JSON.stringify({ memoryMb: 1 }), source.id);
    // A container never restored before is restored in place instead: the snapshot is good and the source carries on.
    const inPlace = await (await source.snapshot({ kind: "memory" })).waitUntilReady({ timeoutMs: 60000 });
    assert.equal((await source.refresh()).status, "running");
    assert.equal((await state(source)).secret, secret);
    assert.ok(t.logs.some((line) => line.event === "memory_resumed_in_place" && line.snapshotId === inPlace.id));
    // Restored once, it cannot be again: now the snapshot fails, saying so, and the source stays stopped.
    const snapshot = await source.snapshot({ kind: "memory" });
    await assert.rejects(snapshot.waitUntilReady({ timeoutMs: 60000 }), (error: { code: string }) => error.code === "checkpoint_restore_failed");
    assert.equal(snapshot.info.status, "failed");
    assert.equal(snapshot.info.error?.code, "checkpoint_restore_failed");
    assert.match(snapshot.info.error!.message, /stopped/);
    assert.equal((await source.refresh()).status, "stopped", "the sandbox says what it is: stopped, its processes not started afresh");
    const images = await t.server.context.engine.listImages({ "dev.strata.snapshot": snapshot.id });
    assert.deepEqual(images, [], "the failed snapshot's image is gone");
    assert.equal(await errorCode(t.strata.sandboxes.create({ memorySnapshotId: snapshot.id })), "snapshot_not_ready");
  } finally {
    await source.delete().catch(() => undefined);
    for (const s of (await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots) await s.delete({ force: true });
  }
});
