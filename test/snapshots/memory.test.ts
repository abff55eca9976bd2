// A notebook service checkpoints running gVisor sandboxes and resumes or forks
// them with their processes where they were.
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
  const [secret = "", count = "-1"] = (await sandbox.exec(["cat", "/tmp/state"])).stdout.trim().split(" ");
  return { secret, count: Number(count) };
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
  const forks = await source.fork(2);
  assert.equal(forks.length, 2);
  for (const fork of forks) {
    assert.deepEqual(await state(fork), { secret: before.secret, count: 4 });
    assert.deepEqual(await tick(fork), { secret: before.secret, count: 5 });
  }
  await forks[0]!.exec(["sh", "-c", "echo mine > /tmp/only-in-fork-0"]);
  assert.equal((await forks[1]!.exec(["sh", "-c", "test -e /tmp/only-in-fork-0 || echo absent"])).stdout, "absent\n");
  assert.equal((await source.refresh()).status, "running");
  assert.deepEqual(await tick(source), { secret: before.secret, count: 5 });

  for (const s of [restored, ...forks, source]) await s.delete();
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
