// A server that restarts still lists and drives its sandboxes; a lost index
// is rebuilt from the containers' labels; another server's sweeps leave them alone.
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { engineContainers, engineHasImage } from "../engine.js";
import { baseImage, closeAll, startTestServer, type TestServer, test } from "../harness.js";

test("after a restart the server lists and drives the sandboxes it made", async (t) => {
  const servers: TestServer[] = [];
  t.after(() => closeAll(...servers));
  const first = await startTestServer();
  servers.push(first);
  const keep = await first.strata.sandboxes.create({ image: baseImage, name: "survivor", labels: { k: "v" } });
  await keep.exec("echo before > /tmp/state");
  const stopped = await first.strata.sandboxes.create({ image: baseImage });
  await stopped.stop({ timeoutSeconds: 1 });
  await first.stop();

  const second = await first.restart();
  servers.push(second);
  const list = await second.strata.sandboxes.list();
  assert.deepEqual(list.map((s) => s.id).sort(), [keep.id, stopped.id].sort());
  const again = await second.strata.sandboxes.get("survivor");
  assert.equal(again.status, "running");
  assert.deepEqual(again.info.labels, { k: "v" });
  assert.equal((await again.exec("cat /tmp/state")).stdout, "before\n");
  assert.equal((await second.strata.sandboxes.get(stopped.id)).status, "stopped");
  await (await second.strata.sandboxes.get(stopped.id)).start();
  assert.equal((await second.strata.sandboxes.get(stopped.id)).status, "running");

  // the index is lost: the containers' labels bring the sandboxes back
  await second.stop();
  for (const file of ["strata.db", "strata.db-wal", "strata.db-shm"]) rmSync(join(second.home, file), { force: true });
  const third = await second.restart();
  servers.push(third);
  const rebuilt = await third.strata.sandboxes.get("survivor");
  assert.equal(rebuilt.id, keep.id);
  assert.equal((await rebuilt.exec("cat /tmp/state")).stdout, "before\n");
  assert.equal((await third.strata.sandboxes.list()).length, 2);
});

test("sandboxes and snapshots of another server on the same engine are not listed or touched by its sweeps and gc", async (t) => {
  const servers: TestServer[] = [];
  t.after(() => closeAll(...servers));
  const a = await startTestServer();
  servers.push(a);
  const b = await startTestServer();
  servers.push(b);
  const mine = await a.strata.sandboxes.create({ image: baseImage });
  await mine.exec("echo a > /owner");
  const snapshot = await (await mine.snapshot()).waitUntilReady();
  const stoppedMine = await a.strata.sandboxes.create({ image: baseImage });
  await stoppedMine.stop({ timeoutSeconds: 1 });
  assert.equal((await b.strata.sandboxes.list()).length, 0);

  // b's own orphan (a container with b's label and no record), so its sweep is seen to run
  const orphanId = await b.server.context.engine.createContainer({
    name: `strata-test-orphan-${randomUUID()}`, image: baseImage, env: [], network: false,
    labels: { "dev.strata.server": b.server.context.serverId, "dev.strata.sandbox": randomUUID() },
  });
  await b.stop();
  const b2 = await b.restart();
  servers.push(b2);
  // startup recovery swept b's orphans; gc and the expiry sweep run now
  assert.ok(!(await engineContainers()).some((c) => c.id === orphanId), "b's sweep ran and removed its own orphan");
  assert.ok(b2.logs.some((line) => line.event === "orphan_container_removed" && line.containerId === orphanId));
  const report = await b2.strata.gc();
  await b2.server.expiry.sweep();
  assert.ok(!report.removedImages.some((image) => image.id === snapshot.info.imageId));

  assert.equal((await a.strata.sandboxes.get(mine.id)).status, "running");
  assert.equal((await a.strata.sandboxes.get(stoppedMine.id)).status, "stopped");
  assert.equal(await a.containers(), 2);
  assert.equal(await engineHasImage(snapshot.info.imageId!), true);
  const restored = await a.strata.sandboxes.create({ snapshotId: snapshot.id });
  assert.equal((await restored.exec("cat /owner")).stdout, "a\n");
  assert.equal((await b2.strata.sandboxes.list()).length, 0);
});
