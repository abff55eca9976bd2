// A user snapshots sandboxes and starts new ones from the snapshots.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { engineImages as allEngineImages } from "../engine.js";
import type { Snapshot } from "@strata/sdk";
import { baseImage, errorCode, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

/** Ids of the snapshot images this file's server has on the engine, asked of the engine directly. */
async function engineImages(): Promise<string[]> {
  return (await allEngineImages())
    .filter((image) => image.labels["dev.strata.server"] === t.server.context.serverId && image.labels["dev.strata.snapshot"])
    .map((image) => image.id);
}

/**
 * Holds every commit the server asks of the engine until release() (the real
 * engine still does the work), so a snapshot stays `creating` for as long as
 * a test needs it to.
 */
function holdCommits(engine: TestServer["server"]["context"]["engine"]): { release: () => void } {
  const commit = engine.commit;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  engine.commit = async (...args: Parameters<typeof commit>) => {
    await held;
    return commit.apply(engine, args);
  };
  return {
    release: () => {
      engine.commit = commit;
      release();
    },
  };
}

test("round trip: files and an installed program come back in a restored sandbox", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, env: { MODE: "source" }, labels: { role: "source" } });
  await source.files.write("/work/data.txt", "precious data");
  await source.exec("mkdir -p /opt/tool/bin && printf '#!/bin/sh\\necho tool v1 \"$@\"\\n' > /opt/tool/bin/tool && chmod 755 /opt/tool/bin/tool && ln -s /opt/tool/bin/tool /usr/bin/tool");
  await source.exec("dd if=/dev/urandom of=/work/blob bs=1k count=512 2>/dev/null; md5sum /work/blob > /work/blob.md5");

  const snapshot = await source.snapshot({ name: "round-trip", labels: { stage: "one" } });
  assert.equal(snapshot.status, "creating");
  assert.equal(snapshot.info.kind, "container");
  await snapshot.waitUntilReady();
  const info = snapshot.info;
  assert.equal(info.status, "ready");
  assert.match(info.digest!, /^sha256:[0-9a-f]{64}$/);
  assert.match(info.imageUri!, /^sha256:[0-9a-f]{64}$/);
  assert.ok(info.sizeBytes! >= 512 * 1024, `sizeBytes ${info.sizeBytes}`);
  assert.ok(info.imageSizeBytes! > info.sizeBytes!);
  assert.deepEqual(info.baseImage.ref, baseImage);
  assert.match(info.baseImage.digest, /^sha256:/);
  assert.equal(info.sandboxId, source.id);
  assert.equal(info.parent, undefined);
  assert.deepEqual(info.labels, { stage: "one" });
  assert.ok(info.readyAt && Date.parse(info.readyAt) >= Date.parse(info.createdAt));
  // the source keeps running
  assert.equal((await source.refresh()).status, "running");

  const restored = await t.strata.sandboxes.create({ snapshotId: snapshot.id });
  assert.equal(restored.info.snapshotId, snapshot.id);
  assert.equal(await restored.files.readText("/work/data.txt"), "precious data");
  assert.equal((await restored.exec("tool a b")).stdout, "tool v1 a b\n");
  assert.equal((await restored.exec("md5sum -c /work/blob.md5")).exitCode, 0);
  // the source's env comes along unless given
  assert.equal((await restored.exec("echo $MODE")).stdout, "source\n");
  const overridden = await t.strata.sandboxes.create({ snapshotId: "round-trip", env: { MODE: "mine" } });
  assert.equal((await overridden.exec("echo $MODE")).stdout, "mine\n");
  // by digest
  const byDigest = await t.strata.sandboxes.create({ snapshotId: info.digest! });
  assert.equal((await byDigest.files.readText("/work/data.txt")), "precious data");
  // changes in a restored sandbox stay there
  await restored.exec("echo changed > /work/data.txt");
  assert.equal(await byDigest.files.readText("/work/data.txt"), "precious data");
  for (const sandbox of [source, restored, overridden, byDigest]) await sandbox.delete();

  // get by id, name and digest
  assert.equal((await t.strata.snapshots.get("round-trip")).id, snapshot.id);
  assert.equal((await t.strata.snapshots.get(info.digest!)).id, snapshot.id);
  await snapshot.delete();
  assert.equal(await errorCode(t.strata.snapshots.get(snapshot.id)), "snapshot_not_found");
  assert.ok(!(await engineImages()).includes(info.imageId!), "the image went with the snapshot");
});

test("a lineage of three records each parent; delete is refused while children exist unless forced", async () => {
  const first = await t.strata.sandboxes.create({ image: baseImage });
  await first.exec("echo 1 > /gen");
  const one = await (await first.snapshot({ name: "gen-1" })).waitUntilReady();
  const second = await t.strata.sandboxes.create({ snapshotId: "gen-1" });
  await second.exec("echo 2 >> /gen");
  const two = await (await second.snapshot({ name: "gen-2" })).waitUntilReady();
  const third = await t.strata.sandboxes.create({ snapshotId: two.id });
  await third.exec("echo 3 >> /gen");
  const three = await (await third.snapshot({ name: "gen-3" })).waitUntilReady();

  assert.equal(one.info.parent, undefined);
  assert.equal(two.info.parent, one.id);
  assert.equal(two.info.parentDigest, one.info.digest);
  assert.equal(three.info.parent, two.id);
  assert.equal(three.info.parentDigest, two.info.digest);
  assert.deepEqual(three.info.baseImage, one.info.baseImage);
  const last = await t.strata.sandboxes.create({ snapshotId: "gen-3" });
  assert.equal((await last.exec("cat /gen")).stdout, "1\n2\n3\n");

  assert.equal(await errorCode(one.delete()), "snapshot_has_children");
  assert.equal(await errorCode(two.delete()), "snapshot_has_children");
  assert.equal((await one.refresh()).status, "ready");

  // forced: the parent goes while its child exists; the child keeps its lineage fields and still restores
  await one.delete({ force: true });
  assert.equal(await errorCode(one.refresh()), "snapshot_not_found");
  const orphaned = await two.refresh();
  assert.equal(orphaned.status, "ready");
  assert.equal(orphaned.parentDigest, one.info.digest);
  const fromOrphan = await t.strata.sandboxes.create({ snapshotId: two.id });
  assert.equal((await fromOrphan.exec("cat /gen")).stdout, "1\n2\n");
  // sandboxes made from deleted snapshots keep working
  assert.equal((await second.exec("cat /gen")).stdout, "1\n2\n");
  assert.equal(await errorCode(two.delete()), "snapshot_has_children");
  await three.delete();
  await two.delete();
  for (const sandbox of [first, second, third, last, fromOrphan]) await sandbox.delete();
});

test("restores refuse unknown and unready snapshots, and take only the identifier", async () => {
  assert.equal(await errorCode(t.strata.sandboxes.create({ snapshotId: "no-such-snapshot" })), "snapshot_not_found");
  assert.equal(await errorCode(t.strata.sandboxes.create({ snapshotId: "sha256:" + "0".repeat(64) })), "snapshot_not_found");
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, snapshotId: "x" })), "bad_request");
  const reply = await fetch(`${t.server.url}/v1/sandboxes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ snapshotId: "x", imageId: "sha256:evil", sizeBytes: 1 }),
  });
  assert.equal(reply.status, 400);

  const source = await t.strata.sandboxes.create({ image: baseImage });
  const containers = await t.containers();
  // the capture is held in the engine, so the snapshot is creating for certain while the restores are tried
  const hold = holdCommits(t.server.context.engine);
  let pending: Snapshot;
  try {
    pending = await source.snapshot({ name: "not-yet" });
    assert.equal((await pending.refresh()).status, "creating");
    assert.equal(await errorCode(t.strata.sandboxes.create({ snapshotId: "not-yet" })), "snapshot_not_ready");
    assert.equal(await errorCode(t.strata.sandboxes.create({ snapshotId: pending.id })), "snapshot_not_ready");
    assert.equal(await errorCode(pending.delete()), "snapshot_creating");
    assert.equal((await pending.refresh()).status, "creating");
    assert.equal(await t.containers(), containers, "a refused restore made a container");
  } finally {
    hold.release();
  }
  // released, it turns ready and restores
  await pending.waitUntilReady();
  const restored = await t.strata.sandboxes.create({ snapshotId: "not-yet" });
  await restored.delete();
  await pending.delete();

  // a forced delete of a creating snapshot removes it and the image its capture makes
  const again = holdCommits(t.server.context.engine);
  const forced = await source.snapshot();
  const deleting = forced.delete({ force: true });
  again.release();
  await deleting;
  assert.equal(await errorCode(forced.refresh()), "snapshot_not_found");
  assert.deepEqual((await allEngineImages()).filter((image) => image.labels["dev.strata.snapshot"] === forced.id), []);
  await source.delete();
  assert.equal(await t.containers(), containers - 1);
});

test("names are validated and unique", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  for (const bad of ["../etc", "a/b", "has space", "", "x".repeat(129), "tab\tname", "-leading"]) {
    assert.equal(await errorCode(source.snapshot({ name: bad })), "bad_request", JSON.stringify(bad));
  }
  const first = await source.snapshot({ name: "unique.name_1-x" });
  assert.equal(await errorCode(source.snapshot({ name: "unique.name_1-x" })), "snapshot_name_taken");
  await first.waitUntilReady();
  assert.equal(await errorCode(source.snapshot({ name: "unique.name_1-x" })), "snapshot_name_taken");
  assert.equal((await t.strata.snapshots.list({ sandboxId: source.id })).snapshots.length, 1);
  await first.delete();
  await source.delete();
});

test("a stopped sandbox can be snapshotted and stays stopped", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec("echo cold > /state");
  await source.stop({ timeoutSeconds: 1 });
  const snapshot = await (await source.snapshot()).waitUntilReady();
  assert.equal((await source.refresh()).status, "stopped");
  const restored = await t.strata.sandboxes.create({ snapshotId: snapshot.id });
  assert.equal((await restored.exec("cat /state")).stdout, "cold\n");
  await restored.delete();
  await source.delete();
  await snapshot.delete();
});

test("list filters by kind, status, sandbox and labels, newest first, in pages", async () => {
  const a = await t.strata.sandboxes.create({ image: baseImage });
  const b = await t.strata.sandboxes.create({ image: baseImage });
  const made = [];
  for (let i = 0; i < 5; i++) {
    made.push(await (await (i < 3 ? a : b).snapshot({ labels: { batch: "list", n: String(i) } })).waitUntilReady());
  }
  const all = await t.strata.snapshots.list({ labels: { batch: "list" } });
  assert.deepEqual(all.snapshots.map((s) => s.id), made.map((s) => s.id).reverse());
  assert.equal((await t.strata.snapshots.list({ sandboxId: a.id })).snapshots.length, 3);
  assert.equal((await t.strata.snapshots.list({ labels: { batch: "list", n: "4" } })).snapshots[0]!.id, made[4]!.id);
  assert.equal((await t.strata.snapshots.list({ kind: "directory", labels: { batch: "list" } })).snapshots.length, 0);
  assert.equal((await t.strata.snapshots.list({ status: "ready", labels: { batch: "list" } })).snapshots.length, 5);

  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await t.strata.snapshots.list({ labels: { batch: "list" }, limit: 2, cursor });
    assert.ok(page.snapshots.length <= 2);
    seen.push(...page.snapshots.map((s) => s.id));
    cursor = page.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, all.snapshots.map((s) => s.id));
  assert.equal(await errorCode(t.strata.snapshots.list({ cursor: "garbage" })), "bad_request");
  for (const s of made) await s.delete();
  await a.delete();
  await b.delete();
});

test("20 concurrent snapshots of different sandboxes all turn ready", async () => {
  const sandboxes = await Promise.all(Array.from({ length: 20 }, () => t.strata.sandboxes.create({ image: baseImage })));
  await Promise.all(sandboxes.map((s, i) => s.exec(`echo ${i} > /who`)));
  const snapshots = await Promise.all(sandboxes.map((s) => s.snapshot({ labels: { batch: "twenty" } })));
  await Promise.all(snapshots.map((s) => s.waitUntilReady()));
  assert.equal(new Set(snapshots.map((s) => s.info.digest)).size, 20);
  const restored = await Promise.all(snapshots.map((s) => t.strata.sandboxes.create({ snapshotId: s.id })));
  const seen = await Promise.all(restored.map(async (s) => (await s.exec("cat /who")).stdout.trim()));
  assert.deepEqual(seen, sandboxes.map((_, i) => String(i)));
  await Promise.all([...sandboxes, ...restored].map((s) => s.delete()));
  for (const s of snapshots) await s.delete();
});

test("Idempotency-Key: a retried create returns the first result", async () => {
  const key = `key-${Date.now()}`;
  const first = await t.strata.sandboxes.create({ image: baseImage, labels: { idem: "1" } }, { idempotencyKey: key });
  const again = await t.strata.sandboxes.create({ image: baseImage, labels: { idem: "1" } }, { idempotencyKey: key });
  assert.equal(again.id, first.id);
  assert.equal((await t.strata.sandboxes.list({ labels: { idem: "1" } })).length, 1);
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, labels: { idem: "2" } }, { idempotencyKey: key })), "idempotency_conflict");

  const [s1, s2] = await Promise.all([first.snapshot({ idempotencyKey: key }), first.snapshot({ idempotencyKey: key })]);
  assert.equal(s1.id, s2.id);
  assert.equal((await t.strata.snapshots.list({ sandboxId: first.id })).snapshots.length, 1);
  await s1.waitUntilReady();
  await s1.delete();
  await first.delete();
});

test("the index is a cache: deleted, it is rebuilt from the manifests on restart", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec("echo keep > /kept");
  const a = await (await source.snapshot({ name: "cached-a", labels: { l: "1" } })).waitUntilReady();
  const restoredFrom = await t.strata.sandboxes.create({ snapshotId: a.id });
  const b = await (await restoredFrom.snapshot({ name: "cached-b" })).waitUntilReady();
  const before = (await t.strata.snapshots.list()).snapshots.map((s) => s.info);

  await t.stop();
  for (const file of ["strata.db", "strata.db-wal", "strata.db-shm"]) rmSync(join(t.home, file), { force: true });
  t = await t.restart();
  const after = (await t.strata.snapshots.list()).snapshots.map((s) => s.info);
  assert.deepEqual(after, before);
  const again = await t.strata.snapshots.get("cached-b");
  assert.equal(again.info.digest, b.info.digest);
  assert.equal(again.info.parent, a.id);
  const restored = await t.strata.sandboxes.create({ snapshotId: "cached-a" });
  assert.equal((await restored.exec("cat /kept")).stdout, "keep\n");
  await restored.delete();
  for (const s of [source, restoredFrom]) await (await t.strata.sandboxes.get(s.id)).delete();
  await t.strata.snapshots.delete("cached-b");
  await t.strata.snapshots.delete("cached-a");
});

test("gc removes images no record owns and never what a record owns", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  const kept = await (await source.snapshot({ name: "gc-kept" })).waitUntilReady();
  // an image that looks like ours but that no record owns, as a crash could leave
  const stray = await t.server.context.engine.commit((await t.server.context.index.findSandbox(source.id))!.containerId!, {
    repo: `strata/snapshots-${t.server.context.serverId}`, tag: "stray", pause: true,
    labels: { "dev.strata.server": t.server.context.serverId, "dev.strata.snapshot": "00000000-0000-4000-8000-000000000000" },
  });
  const report = await t.strata.gc();
  // (images of snapshots earlier tests deleted while sandboxes used them may go in the same run)
  const removed = report.removedImages.find((image) => image.id === stray);
  assert.ok(removed, "the stray image was removed");
  assert.ok(removed.sizeBytes > 0);
  assert.equal(report.freedBytes, report.removedImages.reduce((sum, image) => sum + image.sizeBytes, 0));
  const owned = new Set((await t.strata.snapshots.list()).snapshots.map((s) => s.info.imageId));
  for (const image of report.removedImages) assert.ok(!owned.has(image.id), `gc removed ${image.id}, which a record owns`);
  assert.ok(!(await engineImages()).includes(stray));
  assert.ok((await engineImages()).includes(kept.info.imageId!));
  const restored = await t.strata.sandboxes.create({ snapshotId: "gc-kept" });
  assert.equal((await t.strata.gc()).removedImages.length, 0);
  await restored.delete();
  await source.delete();
  await kept.delete();
});

/** What the engine itself says of a sandbox's container: runtime, network mode and limits. */
function engineSettings(containerId: string): { runtime: string; networkMode: string; memory: number; pids: number | null; nanoCpus: number } {
  const [info] = JSON.parse(execFileSync("docker", ["inspect", containerId], { encoding: "utf8" })) as {
    HostConfig: { Runtime: string; NetworkMode: string; Memory: number; PidsLimit: number | null; NanoCpus: number };
  }[];
  const host = info!.HostConfig;
  return { runtime: host.Runtime, networkMode: host.NetworkMode, memory: host.Memory, pids: host.PidsLimit, nanoCpus: host.NanoCpus };
}

const containerOf = (server: TestServer, id: string) => server.server.context.index.findSandbox(id)!.containerId!;

test("a restore keeps the source's isolation, network and limits unless the request sets them; imports carry them too", async () => {
  const resources = { cpus: 0.5, memoryMb: 256 };
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", network: false, resources });
  const other = await startTestServer();
  const made: { delete(): Promise<void> }[] = [source];
  try {
    const snapshot = await (await source.snapshot()).waitUntilReady({ timeoutMs: 60000 });
    assert.deepEqual(snapshot.info.settings, { isolation: "gvisor", network: false, resources });

    const plain = await t.strata.sandboxes.create({ snapshotId: snapshot.id });
    made.push(plain);
    assert.deepEqual({ isolation: plain.info.isolation, network: plain.info.network, resources: plain.info.resources }, { isolation: "gvisor", network: false, resources });
    assert.deepEqual(engineSettings(containerOf(t, plain.id)), { runtime: "runsc", networkMode: "none", memory: 256 * 1024 * 1024, pids: null, nanoCpus: 5e8 });

    const overridden = await t.strata.sandboxes.create({ snapshotId: snapshot.id, isolation: "runc", network: true, resources: { pids: 50 } });
    made.push(overridden);
    assert.deepEqual(
      { isolation: overridden.info.isolation, network: overridden.info.network, resources: overridden.info.resources },
      { isolation: "runc", network: true, resources: { cpus: 0.5, memoryMb: 256, pids: 50 } },
    );
    assert.deepEqual(engineSettings(containerOf(t, overridden.id)), { runtime: "runc", networkMode: "bridge", memory: 256 * 1024 * 1024, pids: 50, nanoCpus: 5e8 });

    const archive = new Uint8Array(await new Response(await snapshot.export()).arrayBuffer());
    const { snapshot: imported } = await other.strata.snapshots.import(archive);
    assert.deepEqual(imported.info.settings, { isolation: "gvisor", network: false, resources });
    const there = await other.strata.sandboxes.create({ snapshotId: imported.id });
    assert.deepEqual({ isolation: there.info.isolation, network: there.info.network, resources: there.info.resources }, { isolation: "gvisor", network: false, resources });
    assert.equal(engineSettings(containerOf(other, there.id)).runtime, "runsc");
    await there.delete();
    await imported.delete();
  } finally {
    for (const sandbox of made.reverse()) await sandbox.delete().catch(() => undefined);
    await other.close();
    await Promise.all((await t.strata.snapshots.list({ sandboxId: source.id })).snapshots.map((s) => s.delete({ force: true })));
  }
});

test("a server with a minimum isolation refuses weaker requests with 403 and raises unset and inherited ones", async () => {
  const strict = await startTestServer({ minIsolation: "gvisor" });
  let runcSource: { delete(): Promise<void> } | undefined;
  try {
    const refused = await strict.strata.sandboxes.create({ image: baseImage, isolation: "runc" }).then(() => null, (error: { code: string; status: number }) => error);
    assert.deepEqual({ code: refused?.code, status: refused?.status }, { code: "isolation_below_minimum", status: 403 });
    assert.equal(await strict.containers(), 0, "nothing was made");

    const unset = await strict.strata.sandboxes.create({ image: baseImage });
    assert.equal(unset.info.isolation, "gvisor");
    assert.equal(engineSettings(containerOf(strict, unset.id)).runtime, "runsc");
    await unset.delete();

    // A runc snapshot made elsewhere comes back under gvisor here, and cannot be asked for as runc.
    const source = await t.strata.sandboxes.create({ image: baseImage });
    runcSource = source;
    const snapshot = await (await source.snapshot()).waitUntilReady({ timeoutMs: 60000 });
    assert.equal(snapshot.info.settings?.isolation, "runc");
    const archive = new Uint8Array(await new Response(await snapshot.export()).arrayBuffer());
    await snapshot.delete();
    const { snapshot: imported } = await strict.strata.snapshots.import(archive);
    assert.equal(await errorCode(strict.strata.sandboxes.create({ snapshotId: imported.id, isolation: "runc" })), "isolation_below_minimum");
    const raised = await strict.strata.sandboxes.create({ snapshotId: imported.id });
    assert.equal(raised.info.isolation, "gvisor");
    assert.equal(engineSettings(containerOf(strict, raised.id)).runtime, "runsc");
    await raised.delete();
    await imported.delete();
  } finally {
    await runcSource?.delete().catch(() => undefined);
    await strict.close();
  }
});
