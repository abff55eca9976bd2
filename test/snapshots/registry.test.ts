// Snapshots cross servers through a real registry on loopback: server A pushes,
// server B (its own home) restores from imageUri.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { parseRegistry } from "@strata/server";
import { engineHasImage } from "../engine.js";
import { baseImage, closeAll, errorCode, eventually, startTestServer, type TestServer, test } from "../harness.js";
import { startRegistry, type TestRegistry } from "../registry.js";

let registry: TestRegistry;
let a: TestServer;
let b: TestServer;
before(async () => {
  registry = await startRegistry();
  a = await startTestServer({ registry: parseRegistry(`${registry.host}/team`) });
  b = await startTestServer();
});
after(async () => {
  try {
    await closeAll(a, b);
  } finally {
    await registry?.close();
  }
});

test("a container snapshot pushed by one server restores on another from its imageUri", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage, env: { FROM: "server-a" } });
  await source.exec("mkdir -p /work && echo crossed > /work/file && head -c 2000000 /dev/urandom > /work/bin && md5sum /work/bin > /work/sum");
  const snapshot = await (await source.snapshot({ name: "to-push" })).waitUntilReady();
  const events: string[] = [];
  await snapshot.push({ onProgress: (event) => events.push(event.status) });
  const uri = snapshot.info.imageUri!;
  assert.match(uri, new RegExp(`^${registry.host.replace(/\./g, "\\.")}/team/strata-snapshots@sha256:[0-9a-f]{64}$`));
  assert.ok(events.length > 0, "progress was reported");
  assert.equal((await a.strata.snapshots.get("to-push")).info.imageUri, uri);

  // the image leaves the engine: B must pull it
  await source.delete();
  const imageId = snapshot.info.imageId!;
  await snapshot.delete();
  assert.equal(await engineHasImage(imageId), false);

  const restored = await b.strata.sandboxes.create({ imageUri: uri });
  assert.equal((await restored.exec("cat /work/file")).stdout, "crossed\n");
  assert.equal((await restored.exec("cd /work && md5sum -c sum")).exitCode, 0);
  assert.equal((await restored.exec("echo $FROM")).stdout, "server-a\n");
  const local = await b.strata.snapshots.get(restored.info.snapshotId!);
  assert.equal(local.info.origin?.imageUri, uri);
  assert.equal(local.info.imageId, imageId);
  // lineage carries on
  const child = await (await restored.snapshot()).waitUntilReady();
  assert.equal(child.info.parent, local.id);
  // a second restore uses the local record, no second pull
  const again = await b.strata.sandboxes.create({ imageUri: uri });
  assert.equal(again.info.snapshotId, local.id);
  for (const s of [restored, again]) await s.delete();
  await child.delete();
  // nothing else uses the pulled image: deleting its snapshot frees it on the engine
  assert.equal(await engineHasImage(imageId), true);
  await local.delete();
  assert.equal(await engineHasImage(imageId), false, "the pulled image went with its snapshot");
  assert.deepEqual(await b.leftovers(), { containers: [], images: [] });
});

test("a directory snapshot crosses the same way", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /cfg/sub && echo dir-crossed > /cfg/sub/f && chmod 600 /cfg/sub/f");
  const snapshot = await (await source.snapshotDirectory("/cfg")).waitUntilReady();
  await snapshot.push({ repository: "dirs" });
  const uri = snapshot.info.imageUri!;
  assert.match(uri, /\/team\/dirs@sha256:[0-9a-f]{64}$/);
  await source.delete();
  await snapshot.delete();

  const restored = await b.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ imageUri: uri }] });
  assert.equal((await restored.exec("cat /cfg/sub/f")).stdout, "dir-crossed\n");
  assert.equal((await restored.exec("stat -c %a /cfg/sub/f")).stdout, "600\n");
  const elsewhere = await b.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ imageUri: uri, path: "/moved" }] });
  assert.equal((await elsewhere.exec("cat /moved/sub/f")).stdout, "dir-crossed\n");
  const local = (await b.strata.snapshots.list({ kind: "directory" })).snapshots.find((s) => s.info.origin?.imageUri === uri)!;
  assert.equal(local.info.contentDigest, snapshot.info.contentDigest);
  for (const s of [restored, elsewhere]) await s.delete();
  await local.delete();
});

test("refusals: no digest, unknown digest, no registry, registry down; nothing left behind", async () => {
  const containers = await b.containers();
  const snapshots = (await b.strata.snapshots.list()).snapshots.length;
  assert.equal(await errorCode(b.strata.sandboxes.create({ imageUri: `${registry.host}/team/strata-snapshots:latest` })), "bad_request");
  assert.equal(await errorCode(b.strata.sandboxes.create({ imageUri: `${registry.host}/team/strata-snapshots@sha256:${"0".repeat(64)}` })), "image_not_found");
  assert.equal(await errorCode(b.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ imageUri: `${registry.host}/team/dirs@sha256:${"1".repeat(64)}` }] })), "image_not_found");

  const source = await b.strata.sandboxes.create({ image: baseImage });
  const unpushable = await (await source.snapshot()).waitUntilReady();
  assert.equal(await errorCode(unpushable.push()), "registry_not_configured");
  await unpushable.delete();
  await source.delete();

  const pusher = await a.strata.sandboxes.create({ image: baseImage });
  const pending = await (await pusher.snapshot()).waitUntilReady();
  await registry.stop();
  try {
    assert.equal(await errorCode(pending.push()), "registry_unavailable");
    assert.equal(await errorCode(b.strata.sandboxes.create({ imageUri: `${registry.host}/team/strata-snapshots@sha256:${"2".repeat(64)}` })), "registry_unavailable");
  } finally {
    await registry.start();
  }
  assert.equal((await pending.refresh()).imageUri, pending.info.imageId);
  assert.equal(await b.containers(), containers);
  assert.equal((await b.strata.snapshots.list()).snapshots.length, snapshots);
  await pending.delete();
  await pusher.delete();
});

test("--auto-push pushes every snapshot once it is ready", async () => {
  const auto = await startTestServer({ registry: parseRegistry(registry.host), autoPush: true });
  try {
    const source = await auto.strata.sandboxes.create({ image: baseImage });
    const snapshot = await (await source.snapshot()).waitUntilReady();
    await eventually(async () => !!(await snapshot.refresh()).imageUri?.includes("@"), 60_000, "the automatic push");
    assert.match(snapshot.info.imageUri!, new RegExp(`^${registry.host.replace(/\./g, "\\.")}/strata-snapshots@sha256:`));
    await source.delete();
    await snapshot.delete();
  } finally {
    await auto.close();
  }
});

test("credentials: the right ones push and pull, wrong or missing ones are registry_denied both ways", async () => {
  const secured = await startRegistry({ username: "ci", password: "s3cret" });
  let good: TestServer | undefined;
  let wrong: TestServer | undefined;
  let missing: TestServer | undefined;
  try {
    good = await startTestServer({ registry: parseRegistry(secured.host, { username: "ci", password: "s3cret" }) });
    wrong = await startTestServer({ registry: parseRegistry(secured.host, { username: "ci", password: "wrong" }) });
    missing = await startTestServer({ registry: parseRegistry(secured.host) });
    const source = await good.strata.sandboxes.create({ image: baseImage });
    await source.exec("echo secured > /f");
    const snapshot = await (await source.snapshot()).waitUntilReady();
    await snapshot.push();
    const dirSnapshot = await (await source.snapshotDirectory("/etc")).waitUntilReady();
    await dirSnapshot.push();

    // push: wrong and missing credentials are refused
    const other = await (await source.snapshot()).waitUntilReady();
    const archive = new Uint8Array(await new Response(await other.export()).arrayBuffer());
    for (const [server, what] of [[wrong, "wrong"], [missing, "missing"]] as const) {
      const copy = await server.strata.snapshots.import(archive);
      assert.equal(await errorCode(copy.snapshot.push()), "registry_denied", `push with ${what} credentials`);
      await copy.snapshot.delete();
    }

    // pull: wrong credentials (the server's own registry) and missing ones (b knows none), for both kinds; nothing made
    const imageId = snapshot.info.imageId!;
    await source.delete();
    await snapshot.delete();
    await other.delete();
    assert.equal(await engineHasImage(imageId), false);
    for (const [server, what] of [[wrong, "wrong"], [missing, "missing"], [b, "no"]] as const) {
      const containers = await server.containers();
      const records = (await server.strata.snapshots.list()).snapshots.length;
      assert.equal(await errorCode(server.strata.sandboxes.create({ imageUri: snapshot.info.imageUri! })), "registry_denied", `pull with ${what} credentials`);
      assert.equal(
        await errorCode(server.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ imageUri: dirSnapshot.info.imageUri! }] })),
        "registry_denied",
        `directory pull with ${what} credentials`,
      );
      assert.equal(await server.containers(), containers, `a refused pull with ${what} credentials left a container`);
      assert.equal((await server.strata.snapshots.list()).snapshots.length, records);
      assert.equal(await engineHasImage(imageId), false, `a refused pull with ${what} credentials brought the image`);
    }
    const restored = await good.strata.sandboxes.create({ imageUri: snapshot.info.imageUri! });
    assert.equal((await restored.exec("cat /f")).stdout, "secured\n");
    await restored.delete();
  } finally {
    try {
      await closeAll(good, wrong, missing);
    } finally {
      await secured.close();
    }
  }
});

test("a restore from imageUri keeps the source's isolation, network and limits", async () => {
  const resources = { cpus: 0.5, memoryMb: 128 };
  const source = await a.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", network: false, resources });
  const snapshot = await (await source.snapshot()).waitUntilReady({ timeoutMs: 60000 });
  try {
    await snapshot.push();
    const restored = await b.strata.sandboxes.create({ imageUri: snapshot.info.imageUri! });
    try {
      assert.deepEqual({ isolation: restored.info.isolation, network: restored.info.network, resources: restored.info.resources }, { isolation: "gvisor", network: false, resources });
      const local = await b.strata.snapshots.get(restored.info.snapshotId!);
      assert.deepEqual(local.info.settings, { isolation: "gvisor", network: false, resources });
    } finally {
      await restored.delete();
    }
    await (await b.strata.snapshots.get((await b.strata.snapshots.list({})).snapshots.find((s) => s.info.origin?.imageUri === snapshot.info.imageUri)!.id)).delete();
  } finally {
    await source.delete();
    await snapshot.delete();
  }
});
