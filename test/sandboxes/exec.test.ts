// A user runs commands in sandboxes and trusts what exec reports: a timed-out
// command is gone with everything it started, killed commands leave no
// zombies, binary output can come back byte for byte, and an exec whose
// sandbox stops (or whose client leaves) ends instead of hanging.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import type { Sandbox } from "@strata/sdk";
import { baseImage, eventually, startTestServer, type TestServer, test, errorCode } from "../harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

const isolations = ["runc", "gvisor"] as const;

/** Waits past the end of the commands' own sleeps: what they would do afterwards has had its chance. */
const outlive = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Processes in the sandbox in state Z, as /proc says. */
async function zombies(sandbox: Sandbox): Promise<number> {
  const listing = await sandbox.exec(
    'n=0; for f in /proc/[0-9]*/stat; do IFS= read -r l < "$f" 2>/dev/null || continue; set -- ${l##*") "}; [ "$1" = Z ] && n=$((n + 1)); done; echo $n',
  );
  return Number(listing.stdout.trim());
}

for (const isolation of isolations) {
  test(`${isolation}: a timed-out command is killed with everything it started; exit code 137`, async () => {
    const sandbox = await t.strata.sandboxes.create({ image: baseImage, isolation });
    try {
      const result = await sandbox.exec(
        ["sh", "-c", "(sleep 2; echo child > /child) & sh -c 'sleep 2; echo grandchild > /grandchild' & sleep 2; echo x > /m"],
        { timeoutMs: 500 },
      );
      assert.deepEqual([result.timedOut, result.killed, result.exitCode], [true, true, 137]);
      await outlive(3000);
      const left = await sandbox.exec("ls /m /child /grandchild 2>/dev/null; ps -o args | grep -c '[s]leep 2'");
      assert.equal(left.stdout, "0\n", "nothing of the command ran after the timeout");

      // the same when the command makes its own process groups
      const grouped = await sandbox.exec(["sh", "-c", "set -m; (sleep 2; echo y > /grouped) & sleep 2"], { timeoutMs: 500 });
      assert.equal(grouped.exitCode, 137);
      await outlive(3000);
      assert.equal((await sandbox.exec("ls /grouped 2>/dev/null; echo done")).stdout, "done\n");
    } finally {
      await sandbox.delete();
    }
  });

  test(`${isolation}: five timed-out commands leave no zombie`, async () => {
    const sandbox = await t.strata.sandboxes.create({ image: baseImage, isolation });
    try {
      for (let i = 0; i < 5; i++) {
        const result = await sandbox.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; wait"], { timeoutMs: 300 });
        assert.equal(result.exitCode, 137);
      }
      // the init reaps as the kills land; poll until it has
      await eventually(async () => (await zombies(sandbox)) === 0, 10000, "no zombies");
      assert.equal((await sandbox.exec("ps -o args | grep -c '[s]leep 30'")).stdout, "0\n");
    } finally {
      await sandbox.delete();
    }
  });

  test(`${isolation}: an exec whose sandbox stops answers, reported as killed`, async () => {
    const sandbox = await t.strata.sandboxes.create({ image: baseImage, isolation });
    try {
      let stopping: Promise<unknown> | undefined;
      const outcome = await sandbox.execStream("echo started; sleep 60; echo finished", {
        onStdout: () => (stopping ??= sandbox.stop({ timeoutSeconds: 1 })),
      });
      await stopping;
      assert.deepEqual([outcome.killed, outcome.exitCode, outcome.timedOut], [true, 137, false]);
    } finally {
      await sandbox.delete();
    }
  });
}

test("a client that leaves an exec stream ends its command", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage });
  try {
    const controller = new AbortController();
    await assert.rejects(
      sandbox.execStream("echo started; sleep 2; echo x > /after-abort", { signal: controller.signal, onStdout: () => controller.abort() }),
    );
    await outlive(3000);
    assert.equal((await sandbox.exec("ls /after-abort 2>/dev/null; ps -o args | grep -c '[s]leep 2'")).stdout, "0\n");
  } finally {
    await sandbox.delete();
  }
});

test("a client that leaves a buffered exec ends its command", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor" });
  try {
    const controller = new AbortController();
    const running = sandbox.exec("touch /started; sleep 2; echo x > /after-abort", { signal: controller.signal });
    await eventually(async () => (await sandbox.exec("ls /started 2>/dev/null")).stdout !== "", 10000, "the command to start");
    controller.abort();
    await assert.rejects(running);
    await outlive(3000);
    assert.equal((await sandbox.exec("ls /after-abort 2>/dev/null; ps -o args | grep -c '[s]leep 2'")).stdout, "0\n");
  } finally {
    await sandbox.delete();
  }
});

test("output that is not UTF-8: base64 gives the exact bytes; the default replaces them with U+FFFD", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage });
  try {
    const raw = await sandbox.exec("printf '\\377\\376a'; printf '\\200' >&2", { encoding: "base64" });
    assert.deepEqual(Buffer.from(raw.stdout, "base64"), Buffer.from([0xff, 0xfe, 0x61]));
    assert.deepEqual(Buffer.from(raw.stderr, "base64"), Buffer.from([0x80]));
    const text = await sandbox.exec("printf '\\377\\376a'");
    assert.equal(text.stdout, "\uFFFD\uFFFDa");

    const pieces: Buffer[] = [];
    const streamed = await sandbox.execStream("printf '\\377'; sleep 0.1; printf '\\376\\000'", {
      encoding: "base64",
      onStdout: (data) => pieces.push(Buffer.from(data, "base64")),
    });
    assert.equal(streamed.exitCode, 0);
    assert.deepEqual(Buffer.concat(pieces), Buffer.from([0xff, 0xfe, 0x00]));
  } finally {
    await sandbox.delete();
  }
});

test("images without /bin/sh: commands run as given; on runc a timeout still kills them", async () => {
  const dir = mkdtempSync(join(tmpdir(), "strata-exec-ctx-"));
  writeFileSync(join(dir, "Dockerfile"), `FROM ${baseImage}\nRUN ["/bin/busybox", "rm", "/bin/sh"]\n`);
  const snapshot = await t.strata.snapshots.build({ context: dir });
  try {
    const runc = await t.strata.sandboxes.create({ snapshotId: snapshot.id, cmd: ["/bin/busybox", "sleep", "100000"] });
    const gvisor = await t.strata.sandboxes.create({ snapshotId: snapshot.id, cmd: ["/bin/busybox", "sleep", "100000"], isolation: "gvisor" });
    try {
      assert.equal((await runc.exec(["/bin/busybox", "echo", "no shell"])).stdout, "no shell\n");
      const result = await runc.exec(["/bin/busybox", "ash", "-c", "sleep 2; echo x > /m"], { timeoutMs: 500 });
      assert.deepEqual([result.timedOut, result.killed, result.exitCode], [true, true, 137]);
      await outlive(3000);
      assert.equal((await runc.exec(["/bin/busybox", "ash", "-c", "ls /m 2>/dev/null; echo done"])).stdout, "done\n");

      // gVisor's processes are out of the host's reach: the exec answers at the timeout and says it could not kill
      const unreachable = await gvisor.exec(["/bin/busybox", "sleep", "1"], { timeoutMs: 300 });
      assert.deepEqual([unreachable.timedOut, unreachable.killed], [true, false]);
    } finally {
      await Promise.all([runc.delete(), gvisor.delete()]);
    }
  } finally {
    await snapshot.delete({ force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sandboxes run under an init, and a command that is not in the image is still a 400 that leaves nothing", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage });
  try {
    assert.equal((await sandbox.exec("cat /proc/1/cmdline | tr '\\0' ' '")).stdout, "/sbin/docker-init -- /bin/sh ");
  } finally {
    await sandbox.delete();
  }
  const before = await t.containers();
  for (const [cmd, isolation] of [[["/no/such/binary"], "runc"], [["no-such-command"], "gvisor"]] as const) {
    await assert.rejects(t.strata.sandboxes.create({ image: baseImage, cmd: [...cmd], isolation }), (error: { code?: string; message?: string }) => {
      assert.equal(error.code, "bad_request");
      assert.match(error.message ?? "", new RegExp(cmd[0]));
      return true;
    });
  }
  assert.equal(await t.containers(), before);
});

test("buffered output past the server's limit is cut, and the reply says so", async () => {
  const small = await startTestServer({ maxExecOutputBytes: 8 });
  try {
    const sandbox = await small.strata.sandboxes.create({ image: baseImage });
    const cut = await sandbox.exec("printf 0123456789; printf abcdefghij >&2");
    assert.deepEqual([cut.stdout, cut.stderr, cut.truncated], ["01234567", "abcdefgh", true]);
    const whole = await sandbox.exec("printf 01234567");
    assert.deepEqual([whole.stdout, whole.truncated], ["01234567", false]);
    const streamed: string[] = [];
    await sandbox.execStream("printf 0123456789", { onStdout: (data) => streamed.push(data) });
    assert.equal(streamed.join(""), "0123456789", "the streaming form has no limit");
  } finally {
    await small.close();
  }
});

test("a cwd that is not a directory in the sandbox is refused, not run with the runtime's error as output", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage });
  try {
    assert.equal(await errorCode(sandbox.exec(["pwd"], { cwd: "/nonexistent" })), "path_not_found");
    assert.equal(await errorCode(sandbox.exec(["pwd"], { cwd: "/etc/passwd" })), "bad_request");
    assert.equal(await errorCode(sandbox.execStream(["pwd"], { cwd: "/nonexistent" })), "path_not_found");
    assert.equal((await sandbox.exec(["pwd"], { cwd: "/etc" })).stdout, "/etc\n");
  } finally {
    await sandbox.delete();
  }
});
