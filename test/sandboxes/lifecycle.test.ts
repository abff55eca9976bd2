// A user creates a sandbox, works in it, stops, starts and deletes it.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { baseImage, errorCode, eventually, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

test("the full lifecycle of a sandbox", async () => {
  const { strata } = t;
  const containers = await t.containers();
  const sandbox = await strata.sandboxes.create({
    image: baseImage,
    name: "life-1",
    env: { GREETING: "hi there" },
    labels: { team: "core", purpose: "test" },
    resources: { cpus: 0.5, memoryMb: 128, pids: 64 },
  });
  assert.equal(sandbox.status, "running");
  assert.equal(sandbox.info.name, "life-1");
  assert.deepEqual(sandbox.info.labels, { team: "core", purpose: "test" });
  assert.deepEqual(sandbox.info.resources, { cpus: 0.5, memoryMb: 128, pids: 64 });
  assert.equal(sandbox.info.isolation, "runc");

  // by id and by name
  assert.equal((await strata.sandboxes.get(sandbox.id)).id, sandbox.id);
  assert.equal((await strata.sandboxes.get("life-1")).id, sandbox.id);

  // exec: env, exit code, both streams, cwd, stdin
  const echoed = await sandbox.exec(["sh", "-c", 'echo "$GREETING"; echo warn >&2; exit 7']);
  assert.deepEqual([echoed.exitCode, echoed.stdout, echoed.stderr, echoed.timedOut], [7, "hi there\n", "warn\n", false]);
  assert.equal((await sandbox.exec("pwd", { cwd: "/tmp" })).stdout, "/tmp\n");
  assert.equal((await sandbox.exec("echo $EXTRA", { env: { EXTRA: "x1" } })).stdout, "x1\n");
  assert.equal((await sandbox.exec(["wc", "-c"], { stdin: "12345" })).stdout.trim(), "5");
  // the resource limits reach the container
  const memoryLimit = await sandbox.exec("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max");
  assert.equal(memoryLimit.stdout.trim(), String(128 * 1024 * 1024));

  // a command that runs too long is killed and reported
  const slow = await sandbox.exec(["sleep", "30"], { timeoutMs: 300 });
  assert.equal(slow.timedOut, true);
  assert.notEqual(slow.exitCode, 0);

  // streaming output arrives in pieces, then the exit code
  // the command waits after its first line until the test has received it: output that arrives is streamed, not buffered
  const pieces: string[] = [];
  const errors: string[] = [];
  let released: Promise<unknown> | undefined;
  const outcome = await sandbox.execStream("echo line 1; while [ ! -e /tmp/go-on ]; do sleep 0.05; done; echo line 2; echo line 3; echo bad >&2; exit 4", {
    onStdout: (data) => {
      pieces.push(data);
      if (!released && pieces.join("").includes("line 1\n")) released = sandbox.exec("touch /tmp/go-on");
    },
    onStderr: (data) => errors.push(data),
  });
  assert.ok(released, "the first line arrived while the command was still running");
  await released;
  assert.equal(outcome.exitCode, 4);
  assert.equal(pieces.join(""), "line 1\nline 2\nline 3\n");
  assert.equal(errors.join(""), "bad\n");

  // files: write (parents made), read back, binary safe, directory as tar, tar upload
  const binary = new Uint8Array(70000).map((_, i) => (i * 31) % 256);
  await sandbox.files.write("/work/deep/data.bin", binary);
  assert.deepEqual(await sandbox.files.read("/work/deep/data.bin"), binary);
  await sandbox.files.write("/work/note.txt", "hello file");
  assert.equal(await sandbox.files.readText("/work/note.txt"), "hello file");
  assert.equal((await sandbox.exec("cat /work/note.txt")).stdout, "hello file");
  const tar = await sandbox.files.stream("/work");
  assert.equal(tar.contentType, "application/x-tar");
  const tarBytes = new Uint8Array(await new Response(tar.body).arrayBuffer());
  const copy = await strata.sandboxes.create({ image: baseImage });
  await copy.files.writeTar("/restored", tarBytes);
  assert.equal((await copy.exec("cat /restored/work/note.txt")).stdout, "hello file");
  assert.equal((await copy.exec("wc -c < /restored/work/deep/data.bin")).stdout.trim(), "70000");
  await copy.delete();
  // a streamed upload of unknown length
  const streamed = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode(`chunk ${i}\n`));
      controller.close();
    },
  });
  const written = await sandbox.files.write("/work/streamed.txt", streamed);
  assert.equal(written.bytes, 80);
  assert.equal((await sandbox.exec("tail -n1 /work/streamed.txt")).stdout, "chunk 9\n");

  // stop: state kept, exec and files refused with 409
  const stopped = await sandbox.stop({ timeoutSeconds: 2 });
  assert.equal(stopped.status, "stopped");
  assert.equal(await errorCode(sandbox.exec("true")), "sandbox_not_running");
  assert.equal(await errorCode(sandbox.files.read("/work/note.txt")), "sandbox_not_running");
  assert.equal(await errorCode(sandbox.files.write("/work/x", "x")), "sandbox_not_running");

  // start again: files are still there
  assert.equal((await sandbox.start()).status, "running");
  assert.equal((await sandbox.exec("cat /work/note.txt")).stdout, "hello file");

  await sandbox.delete();
  assert.equal(await errorCode(strata.sandboxes.get(sandbox.id)), "sandbox_not_found");
  assert.equal(await t.containers(), containers);
});

test("list filters by status and labels, newest first", async () => {
  const { strata } = t;
  const a = await strata.sandboxes.create({ image: baseImage, labels: { group: "g1", tier: "a" } });
  const b = await strata.sandboxes.create({ image: baseImage, labels: { group: "g1", tier: "b" } });
  const c = await strata.sandboxes.create({ image: baseImage, labels: { group: "g2" } });
  await b.stop({ timeoutSeconds: 1 });

  const g1 = await strata.sandboxes.list({ labels: { group: "g1" } });
  assert.deepEqual(g1.map((s) => s.id), [b.id, a.id]);
  assert.deepEqual((await strata.sandboxes.list({ labels: { group: "g1", tier: "a" } })).map((s) => s.id), [a.id]);
  assert.deepEqual((await strata.sandboxes.list({ status: "stopped" })).map((s) => s.id), [b.id]);
  const running = (await strata.sandboxes.list({ status: "running" })).map((s) => s.id);
  assert.ok(running.includes(a.id) && running.includes(c.id) && !running.includes(b.id));
  assert.equal((await strata.sandboxes.list({ labels: { group: "none" } })).length, 0);
  for (const s of [a, b, c]) await s.delete();
});

test("a sandbox without network has only loopback", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage, network: false });
  const links = await sandbox.exec("ls /sys/class/net");
  assert.equal(links.stdout.trim(), "lo");
  assert.equal(sandbox.info.network, false);
  await sandbox.delete();
});

test("a sandbox whose command exits is reported stopped with its exit code", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage, cmd: ["sh", "-c", "exit 3"] });
  let info = await sandbox.refresh();
  await eventually(async () => (info = await sandbox.refresh()).status === "stopped", 60_000, "the sandbox to stop");
  assert.equal(info.status, "stopped");
  assert.equal(info.exitCode, 3);
  await sandbox.delete();
});
