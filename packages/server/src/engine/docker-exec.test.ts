// The exec wrapper's pid line: found however stderr is cut into pieces, and
// never part of what the user sees.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PidLine, wrapCommand } from "./docker-exec.js";

function collect(token: string): { line: PidLine; seen: () => string } {
  const pieces: Buffer[] = [];
  const line = new PidLine(token, (data) => pieces.push(Buffer.from(data)));
  return { line, seen: () => Buffer.concat(pieces).toString("latin1") };
}

test("the pid line is taken out of stderr, split anywhere, and what follows passes on", async () => {
  const { line, seen } = collect("tok");
  for (const piece of ["to", "k 4", "2\nerr", "or\n"]) line.write(Buffer.from(piece));
  line.end();
  assert.equal(await line.pid, 42);
  assert.equal(seen(), "error\n");
});

test("what comes before the pid line (a shell's warning) passes on", async () => {
  const { line, seen } = collect("tok");
  line.write(Buffer.from("warning\ntok 7\n\xff", "latin1"));
  assert.equal(await line.pid, 7);
  assert.equal(seen(), "warning\n\xff");
});

test("no pid line: everything passes on and the pid is null", async () => {
  const { line, seen } = collect("tok");
  line.write(Buffer.from("exec failed\n"));
  line.end();
  assert.equal(await line.pid, null);
  assert.equal(seen(), "exec failed\n");
});

test("pid 1 or garbage is never taken as the command's pid", async () => {
  const { line } = collect("tok");
  line.write(Buffer.from("tok 1\n"));
  assert.equal(await line.pid, null);
});

test("the wrapper keeps the argv as given after its own", () => {
  assert.deepEqual(wrapCommand(["printf", "%s", "a b"], "tok").slice(3), ["sh", "printf", "%s", "a b"]);
});
