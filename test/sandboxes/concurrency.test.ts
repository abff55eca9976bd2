// Many sandboxes at once, each independent.
import assert from "node:assert/strict";
import { baseImage, startTestServer, test } from "../harness.js";

test("20 sandboxes created concurrently all run, independently", async () => {
  const t = await startTestServer();
  try {
    const sandboxes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.strata.sandboxes.create({ image: baseImage, labels: { n: String(i) } })),
    );
    assert.equal(new Set(sandboxes.map((s) => s.id)).size, 20);
    assert.ok(sandboxes.every((s) => s.status === "running"));
    await Promise.all(sandboxes.map((s, i) => s.exec(`echo ${i} > /tmp/mine`)));
    const seen = await Promise.all(sandboxes.map(async (s) => (await s.exec("cat /tmp/mine")).stdout.trim()));
    assert.deepEqual(seen, sandboxes.map((_, i) => String(i)));
    assert.equal((await t.strata.sandboxes.list({ status: "running" })).length, 20);
    assert.equal(await t.containers(), 20);
    await Promise.all(sandboxes.map((s) => s.delete()));
    assert.equal(await t.containers(), 0);
  } finally {
    await t.close();
  }
});
