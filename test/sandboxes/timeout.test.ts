// A sandbox with a timeout is stopped and removed when it passes, even across a restart.
import assert from "node:assert/strict";
import { baseImage, closeAll, errorCode, eventually, startTestServer, type TestServer, test } from "../harness.js";

test("a sandbox past its timeout is stopped and removed", async () => {
  const t = await startTestServer({ expirySweepMs: 200 });
  try {
    const shortLived = await t.strata.sandboxes.create({ image: baseImage, timeoutSeconds: 2 });
    const longLived = await t.strata.sandboxes.create({ image: baseImage, timeoutSeconds: 3600 });
    assert.ok(shortLived.info.expiresAt);
    const expiresIn = Date.parse(shortLived.info.expiresAt!) - Date.parse(shortLived.info.createdAt);
    assert.equal(expiresIn, 2000);
    assert.equal((await shortLived.exec("echo alive")).stdout, "alive\n");
    await eventually(async () => (await errorCode(shortLived.refresh())) === "sandbox_not_found", 60_000, "expiry");
    assert.equal((await longLived.refresh()).status, "running");
    assert.equal(await t.containers(), 1);
    assert.ok(t.logs.some((line) => line.event === "sandbox_expired" && line.sandboxId === shortLived.id));
  } finally {
    await t.close();
  }
});

test("a timeout that passes while the server is down is applied when it starts", async (context) => {
  const servers: TestServer[] = [];
  context.after(() => closeAll(...servers));
  const t = await startTestServer({ expirySweepMs: 200 });
  servers.push(t);
  const sandbox = await t.strata.sandboxes.create({ image: baseImage, timeoutSeconds: 1 });
  await t.stop();
  // down until the sandbox's expiry is past (a wait on the clock the server compares with, not a timing under test)
  const expiresAt = Date.parse(sandbox.info.expiresAt!);
  await eventually(async () => Date.now() > expiresAt, 60_000, "the expiry to pass");
  assert.equal(await t.containers(), 1, "the sandbox outlived its server");
  const again = await t.restart();
  servers.push(again);
  await eventually(async () => (await errorCode(again.strata.sandboxes.get(sandbox.id))) === "sandbox_not_found", 60_000, "expiry");
  assert.equal(await again.containers(), 0);
});
