// A sandbox with a timeout is stopped and removed when it passes, even across a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { baseImage, errorCode, eventually, startTestServer } from "../harness.js";

test("a sandbox past its timeout is stopped and removed", async () => {
  const t = await startTestServer({ expirySweepMs: 200 });
  try {
    const shortLived = await t.strata.sandboxes.create({ image: baseImage, timeoutSeconds: 2 });
    const longLived = await t.strata.sandboxes.create({ image: baseImage, timeoutSeconds: 3600 });
    assert.ok(shortLived.info.expiresAt);
    const expiresIn = Date.parse(shortLived.info.expiresAt!) - Date.parse(shortLived.info.createdAt);
    assert.equal(expiresIn, 2000);
    assert.equal((await shortLived.exec("echo alive")).stdout, "alive\n");
    await eventually(async () => (await errorCode(shortLived.refresh())) === "sandbox_not_found", 10000, "expiry");
    assert.equal((await longLived.refresh()).status, "running");
    assert.equal(await t.containers(), 1);
    assert.ok(t.logs.some((line) => line.event === "sandbox_expired" && line.sandboxId === shortLived.id));
  } finally {
    await t.close();
  }
});

test("a timeout that passes while the server is down is applied when it starts", async () => {
  const t = await startTestServer({ expirySweepMs: 200 });
  const sandbox = await t.strata.sandboxes.create({ image: baseImage, timeoutSeconds: 1 });
  await t.stop();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const again = await t.restart();
  try {
    await eventually(async () => (await errorCode(again.strata.sandboxes.get(sandbox.id))) === "sandbox_not_found", 5000, "expiry");
    assert.equal(await again.containers(), 0);
  } finally {
    await again.close();
  }
});
