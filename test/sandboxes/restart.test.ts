// A server that restarts still lists and drives its sandboxes; a lost index
// is rebuilt from the containers' labels.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { baseImage, startTestServer } from "../harness.js";

test("after a restart the server lists and drives the sandboxes it made", async () => {
  const first = await startTestServer();
  const keep = await first.strata.sandboxes.create({ image: baseImage, name: "survivor", labels: { k: "v" } });
  await keep.exec("echo before > /tmp/state");
  const stopped = await first.strata.sandboxes.create({ image: baseImage });
  await stopped.stop({ timeoutSeconds: 1 });
  await first.stop();

  const second = await first.restart();
  try {
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
    try {
      const rebuilt = await third.strata.sandboxes.get("survivor");
      assert.equal(rebuilt.id, keep.id);
      assert.equal((await rebuilt.exec("cat /tmp/state")).stdout, "before\n");
      assert.equal((await third.strata.sandboxes.list()).length, 2);
    } finally {
      await third.close();
    }
  } finally {
    await second.close();
  }
});

test("sandboxes of another server on the same engine are not listed or touched", async () => {
  const a = await startTestServer();
  const b = await startTestServer();
  try {
    const mine = await a.strata.sandboxes.create({ image: baseImage });
    assert.equal((await b.strata.sandboxes.list()).length, 0);
    await b.stop();
    const b2 = await b.restart();
    assert.equal((await a.strata.sandboxes.get(mine.id)).status, "running");
    await b2.close();
  } finally {
    await a.close();
    await b.close();
  }
});
