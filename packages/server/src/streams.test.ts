// Stream scopes: what a scope adopts dies with it, and an error nobody handled
// inside a scope fails that scope, never the process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { adopt, StreamScope } from "./streams.js";

test("closing a scope destroys the streams and kills the children adopted in it, and runs its cleanups", async () => {
  const scope = new StreamScope();
  const cleaned: string[] = [];
  const { stream, child } = scope.run(() => ({
    stream: adopt(new PassThrough()),
    child: adopt(spawn("sleep", ["30"], { stdio: ["pipe", "pipe", "pipe"] })),
  }));
  scope.defer(() => void cleaned.push("temp file"));
  const exited = once(child, "exit");
  await scope.close();
  assert.equal(stream.destroyed, true);
  const [, signal] = await exited;
  assert.equal(signal, "SIGKILL");
  assert.deepEqual(cleaned, ["temp file"]);
});

test("aborting a scope aborts its signal with the reason", () => {
  const scope = new StreamScope();
  const reason = new Error("client gone");
  scope.abort(reason);
  assert.equal(scope.signal.aborted, true);
  assert.equal(scope.signal.reason, reason);
});

test("work given a scope of its own inside another (a job a request starts) is adopted by the inner one alone", async () => {
  const request = new StreamScope();
  const job = new StreamScope();
  const stream = request.run(() => job.run(() => adopt(new PassThrough())));
  await request.close();
  assert.equal(stream.destroyed, false);
  await job.close();
  assert.equal(stream.destroyed, true);
});

test("a stream's error with no listener of its own is the scope's stray error, not an exception", async () => {
  const strays: Error[] = [];
  const scope = new StreamScope((error) => strays.push(error));
  const stream = scope.run(() => adopt(new PassThrough()));
  stream.destroy(new Error("cut"));
  await new Promise((resolve) => stream.on("close", resolve));
  assert.deepEqual(strays.map((e) => e.message), ["cut"]);
  assert.equal(scope.signal.aborted, true);
});

test("a stream's error its own code listens to is not stray", async () => {
  const strays: Error[] = [];
  const scope = new StreamScope((error) => strays.push(error));
  const stream = scope.run(() => adopt(new PassThrough()));
  stream.on("error", () => undefined);
  stream.destroy(new Error("handled"));
  await new Promise((resolve) => stream.on("close", resolve));
  assert.deepEqual(strays, []);
  assert.equal(scope.signal.aborted, false);
});

test("with the guard held, an unhandled error thrown for a scope fails the scope and the process lives on", () => {
  // in a process of its own: this runner counts any uncaught exception as a failure
  const streams = fileURLToPath(new URL("./streams.js", import.meta.url));
  const script = `
    import { holdStrayErrorGuard, StreamScope } from ${JSON.stringify(streams)};
    import { EventEmitter } from "node:events";
    const release = holdStrayErrorGuard();
    const scope = new StreamScope((error) => console.log("stray: " + error.message));
    scope.run(() => setImmediate(() => new EventEmitter().emit("error", new Error("nobody listens"))));
    setTimeout(() => { console.log("alive, aborted: " + scope.signal.aborted); release(); }, 50);
  `;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20000 });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, "stray: nobody listens\nalive, aborted: true\n");
});

test("with the guard held, an unhandled error outside any scope still ends the process", () => {
  const streams = fileURLToPath(new URL("./streams.js", import.meta.url));
  const script = `
    import { holdStrayErrorGuard } from ${JSON.stringify(streams)};
    holdStrayErrorGuard();
    setImmediate(() => { throw new Error("not a request's"); });
    setTimeout(() => console.log("still alive"), 200);
  `;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20000 });
  assert.equal(run.status, 1);
  assert.equal(run.stdout, "");
  assert.match(run.stderr, /not a request's/);
});
