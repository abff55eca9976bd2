// A user drives sandboxes from the `strata` command.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { baseImage, eventually, startTestServer, type TestServer, test } from "./harness.js";

const bin = fileURLToPath(new URL("../../packages/cli/bin/strata.js", import.meta.url));
let t: TestServer;

type Run = { code: number; stdout: string; stderr: string; stdoutBytes: Buffer };

function strata(...args: string[]): Promise<Run> {
  return strataWatched(args, () => {});
}

/** Runs the command; onStdout sees its output as it comes, with whether the command is still running. */
function strataWatched(args: string[], onStdout: (soFar: string, running: boolean) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, STRATA_URL: t.server.url } });
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (data: Buffer) => {
      stdout.push(data);
      onStdout(Buffer.concat(stdout).toString("utf8"), child.exitCode === null);
    });
    child.stderr.on("data", (data) => (stderr += data));
    child.on("error", reject);
    child.on("close", (code) => {
      const stdoutBytes = Buffer.concat(stdout);
      resolve({ code: code ?? -1, stdout: stdoutBytes.toString("utf8"), stderr, stdoutBytes });
    });
  });
}

before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

test("create, list, exec, stop, start and remove from the command line", async () => {
  const created = await strata("sandbox", "create", baseImage, "--name", "cli-box", "--label", "via=cli", "--env", "A=1");
  assert.equal(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  assert.match(id, /^[0-9a-f-]{36}$/);

  const listed = await strata("sandbox", "ls");
  assert.match(listed.stdout, /^ID\s+NAME\s+STATUS/);
  assert.match(listed.stdout, new RegExp(`${id}\\s+cli-box\\s+running`));
  const json = JSON.parse((await strata("sandbox", "ls", "--json", "--label", "via=cli")).stdout) as { id: string }[];
  assert.deepEqual(json.map((s) => s.id), [id]);

  const exec = await strata("sandbox", "exec", "cli-box", "--", "sh", "-c", "echo $A; echo oops >&2; exit 5");
  assert.equal(exec.code, 5);
  assert.equal(exec.stdout, "1\n");
  assert.equal(exec.stderr, "oops\n");
  const execJson = JSON.parse((await strata("sandbox", "exec", "cli-box", "--json", "--", "echo", "hi")).stdout) as { stdout: string };
  assert.equal(execJson.stdout, "hi\n");
  // output that is not UTF-8 reaches the terminal (or a file) byte for byte
  const binary = await strata("sandbox", "exec", "cli-box", "--", "printf", "\\377\\376\\000x");
  assert.deepEqual(binary.stdoutBytes, Buffer.from([0xff, 0xfe, 0x00, 0x78]));

  assert.match((await strata("sandbox", "stop", "cli-box", "--timeout", "1")).stdout, /stopped/);
  const refused = await strata("sandbox", "exec", "cli-box", "--", "true");
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /not running.*sandbox_not_running/);
  assert.match((await strata("sandbox", "start", "cli-box")).stdout, /running/);
  const got = JSON.parse((await strata("sandbox", "get", id, "--json")).stdout) as { status: string; labels: Record<string, string> };
  assert.equal(got.status, "running");
  assert.deepEqual(got.labels, { via: "cli" });
  assert.equal((await strata("sandbox", "rm", "cli-box")).code, 0);
  assert.equal(await t.containers(), 0);
});

test("failures exit non-zero with the server's message", async () => {
  const missing = await strata("sandbox", "get", "no-such-box");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no sandbox 'no-such-box' \(sandbox_not_found\)/);
  const badImage = await strata("sandbox", "create", "not/here:1");
  assert.equal(badImage.code, 1);
  assert.match(badImage.stderr, /not\/here:1.*image_not_found/);
  const usage = await strata("sandbox", "frobnicate");
  assert.equal(usage.code, 2);
  const help = await strata("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: strata/);
});

test("snapshot a sandbox, restore it and clean up from the command line", async () => {
  const id = (await strata("sandbox", "create", baseImage, "--name", "cli-snap-src")).stdout.trim();
  await strata("sandbox", "exec", id, "--", "sh", "-c", "echo saved > /saved");
  const created = await strata("snapshot", "create", "cli-snap-src", "--name", "cli-snap", "--label", "from=cli");
  assert.equal(created.code, 0, created.stderr);
  const snapshotId = created.stdout.trim();
  assert.match(created.stderr, /ready/);

  const listed = await strata("snapshot", "ls", "--label", "from=cli");
  assert.match(listed.stdout, new RegExp(`${snapshotId}\\s+cli-snap\\s+container\\s+ready`));
  const info = JSON.parse((await strata("snapshot", "get", "cli-snap", "--json")).stdout) as { id: string; digest: string };
  assert.equal(info.id, snapshotId);
  assert.match((await strata("snapshot", "get", info.digest)).stdout, /status\s+ready/);

  const restored = (await strata("sandbox", "create", "--snapshot", "cli-snap")).stdout.trim();
  assert.equal((await strata("sandbox", "exec", restored, "--", "cat", "/saved")).stdout, "saved\n");
  assert.equal((await strata("sandbox", "rm", restored, id)).code, 0);
  const missing = await strata("snapshot", "get", "nope");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /snapshot_not_found/);
  assert.equal((await strata("snapshot", "rm", "cli-snap")).code, 0);
  assert.match((await strata("gc")).stdout, /removed \d+ image/);
});

test("export and import an archive from the command line", async () => {
  const { mkdtempSync, statSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "strata-cli-archive-"));
  const id = (await strata("sandbox", "create", baseImage)).stdout.trim();
  await strata("sandbox", "exec", id, "--", "sh", "-c", "mkdir -p /carry && echo carried > /carry/f");
  const snapshotId = (await strata("snapshot", "create", id, "--dir", "/carry", "--name", "cli-carry")).stdout.trim();
  const file = join(dir, "carry.tar.zst");
  const exported = await strata("snapshot", "export", "cli-carry", "-o", file);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stderr, /export .*B\/s/);
  assert.ok(statSync(file).size > 0);
  assert.match((await strata("snapshot", "verify", "cli-carry")).stdout, /ok\s+blob.*\nverified/s);
  assert.equal((await strata("snapshot", "rm", "cli-carry")).code, 0);
  const imported = await strata("snapshot", "import", file);
  assert.equal(imported.code, 0, imported.stderr);
  assert.equal(imported.stdout.trim(), snapshotId);
  assert.match(imported.stderr, /100%.*imported 1/);
  assert.match((await strata("snapshot", "reindex")).stdout, /indexed \d+ snapshot/);
  const missing = await strata("snapshot", "import", join(dir, "nope.tar.zst"));
  assert.notEqual(missing.code, 0);
  await strata("sandbox", "rm", id);
  await strata("snapshot", "rm", "cli-carry");
  rmSync(dir, { recursive: true, force: true });
});

test("build a snapshot from a directory with the log printed live", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "strata-cli-build-"));
  const marker = randomUUID();
  // the build waits until the test has seen its line printed, so the line came while it ran
  writeFileSync(join(dir, "Dockerfile"), `FROM ${baseImage}\nLABEL strata.test.live=${marker}\nARG WHO\nRUN echo "built by $WHO" > /who\nRUN echo waiting-for-the-test && while [ ! -e /tmp/go ]; do sleep 0.1; done\n`);
  let seenWhileRunning = false;
  let released: Promise<void> | undefined;
  const built = await strataWatched(["build", dir, "--name", "cli-built", "--build-arg", "WHO=cli", "--json"], (soFar, running) => {
    if (!released && soFar.includes("waiting-for-the-test")) {
      seenWhileRunning = running;
      released = (async () => {
        const engine = t.server.context.engine;
        let containerId: string | undefined;
        await eventually(async () => {
          containerId = (await engine.listContainers({ "strata.test.live": marker })).find((c) => c.state === "running")?.id;
          return !!containerId;
        }, 60_000, "the build's container");
        await engine.exec(containerId!, { cmd: ["touch", "/tmp/go"] }, { onOutput: () => {} });
      })();
    }
  });
  await released;
  assert.equal(built.code, 0, built.stderr);
  assert.ok(seenWhileRunning, "the log line was printed while the build ran");
  assert.match(built.stdout, /Step 1\/\d+ : FROM/);
  const id = (await strata("sandbox", "create", "--snapshot", "cli-built")).stdout.trim();
  assert.equal((await strata("sandbox", "exec", id, "--", "cat", "/who")).stdout, "built by cli\n");
  await strata("sandbox", "rm", id);
  writeFileSync(join(dir, "Dockerfile"), `FROM ${baseImage}\nRUN exit 4\n`);
  const failed = await strata("build", dir);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /build_failed/);
  await strata("snapshot", "rm", "cli-built");
  rmSync(dir, { recursive: true, force: true });
});

test("fork prints the memory snapshot's id and the forks; the snapshot is found and deleted by that id", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", cmd: ["sh", "-c", "while true; do sleep 1; done"] });
  try {
    const text = await strata("sandbox", "fork", source.id, "--count", "1");
    assert.equal(text.code, 0, text.stderr);
    const [first, ...forks] = text.stdout.trim().split("\n");
    const snapshotId = /^snapshot ([0-9a-f-]{36})$/.exec(first ?? "")?.[1];
    assert.ok(snapshotId, `first line: ${first}`);
    assert.equal(forks.length, 1);
    assert.equal((await t.strata.snapshots.get(snapshotId)).info.kind, "memory");

    const json = JSON.parse((await strata("sandbox", "fork", source.id, "--json")).stdout) as { snapshotId: string; sandboxes: { id: string }[] };
    assert.equal(json.sandboxes.length, 1);
    assert.notEqual(json.snapshotId, snapshotId);
    for (const id of [...forks, json.sandboxes[0]!.id]) assert.equal((await strata("sandbox", "rm", id!)).code, 0);
    for (const id of [snapshotId, json.snapshotId]) assert.equal((await strata("snapshot", "rm", id)).code, 0);
    assert.equal((await t.strata.snapshots.list({ kind: "memory", sandboxId: source.id })).snapshots.length, 0);
  } finally {
    await source.delete();
  }
});

test("exec -i sends the command's standard input to it", async () => {
  const created = await strata("sandbox", "create", baseImage, "--json");
  assert.equal(created.code, 0, created.stderr);
  const id = (JSON.parse(created.stdout) as { id: string }).id;
  try {
    const run = await new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [bin, "sandbox", "exec", id, "-i", "--", "sh"], { env: { ...process.env, STRATA_URL: t.server.url } });
      let stdout = "";
      child.stdout.on("data", (data) => (stdout += data));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? -1, stdout }));
      child.stdin.end("echo from-stdin; exit 3\n");
    });
    assert.deepEqual(run, { code: 3, stdout: "from-stdin\n" });
  } finally {
    await strata("sandbox", "rm", id);
  }
});
