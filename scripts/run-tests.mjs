// Runs the compiled test files with node's test runner, several files at a
// time (each file starts its own servers with their own homes), and always
// ends:
// - every test is bounded: test/harness.ts's `test` gives each a timeout
//   (STRATA_TEST_TIMEOUT_MS), after which it fails and its teardown runs;
// - every file is bounded as a whole: node's --test-timeout (which, under
//   --test, bounds the file's process) ends it with a report, and past that
//   bound and a grace period the process group the runner made for the file
//   (and only that group) is killed;
// - a file's process is told to exit when its tests are done
//   (--test-force-exit), so a server a failed test left listening cannot keep
//   it alive;
// - the run ends non-zero with a summary when a test fails, a file fails or
//   hangs, no test ran, or the engine holds something this run's servers made.
//
// Usage: node scripts/run-tests.mjs [substring...]   (filters files by path)
// Bounds (milliseconds), from the environment: STRATA_TEST_TIMEOUT_MS (one test,
// default 300000), STRATA_TEST_FILE_TIMEOUT_MS (one file, default 900000);
// STRATA_TEST_CONCURRENCY files at once (default 4).
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const testTimeoutMs = Number(process.env.STRATA_TEST_TIMEOUT_MS ?? 300_000);
const fileTimeoutMs = Number(process.env.STRATA_TEST_FILE_TIMEOUT_MS ?? 900_000);
const concurrency = Math.max(1, Number(process.env.STRATA_TEST_CONCURRENCY ?? 4));

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === "node_modules") continue;
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith(".test.js")) out.push(path);
  }
  return out;
}

const roots = ["test/dist", ...readdirSync("packages").map((p) => join("packages", p, "dist"))];
const files = roots.flatMap((root) => {
  try {
    return find(root);
  } catch {
    return [];
  }
});
const filter = process.argv.slice(2);
const selected = filter.length ? files.filter((file) => filter.some((f) => file.includes(f))) : files;

const reporter = new URL("./test-reporter.mjs", import.meta.url).href;
const runId = randomUUID();
const runDir = mkdtempSync(join(tmpdir(), `strata-test-run-${runId.slice(0, 8)}-`));
const started = Date.now();

/** Children the runner spawned, each the leader of its own process group. */
const children = new Set();

/**
 * Kills one file's process group: only a child this runner spawned with
 * `detached: true` (so its pid is its group's id and the runner is not in it).
 */
function killGroup(child) {
  if (!children.has(child) || !Number.isInteger(child.pid) || child.pid <= 1 || child.pid === process.pid) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    for (const child of children) killGroup(child);
    process.exit(130);
  });
}

/** Totals and failing test names of one file, from the lines scripts/test-reporter.mjs wrote. */
function parseResults(text) {
  const tests = text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
  const failed = tests.filter((t) => !t.ok);
  return {
    tests: tests.length,
    pass: tests.filter((t) => t.ok).length,
    fail: failed.length,
    cancelled: failed.filter((t) => t.failureType === "testTimeoutFailure" || t.failureType === "cancelledByParent").length,
    failures: failed.map((t) => `${t.name}${t.failureType === "testTimeoutFailure" ? " (timed out)" : ""}${t.message ? `: ${t.message}` : ""}`),
  };
}

function runFile(file) {
  return new Promise((resolve) => {
    const results = join(runDir, `${randomUUID()}.jsonl`);
    const child = spawn(process.execPath, [
      "--test",
      `--test-timeout=${fileTimeoutMs}`,
      "--test-force-exit",
      "--test-reporter=spec", "--test-reporter-destination=stdout",
      `--test-reporter=${reporter}`, "--test-reporter-destination=stderr",
      file,
    ], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, STRATA_TEST_TIMEOUT_MS: String(testTimeoutMs), STRATA_TEST_RUN: runId, STRATA_TEST_RUN_DIR: runDir, STRATA_TEST_RESULTS: results },
    });
    children.add(child);
    process.stdout.write(`--- started ${relative(process.cwd(), file)}\n`);
    const output = [];
    child.stdout.on("data", (chunk) => output.push(chunk));
    child.stderr.on("data", (chunk) => output.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, fileTimeoutMs + 60_000);
    const fileStart = Date.now();
    // whatever the file left in its group (a server it spawned and never killed) goes with it
    child.on("exit", () => killGroup(child));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      let text = "";
      try {
        text = readFileSync(results, "utf8");
      } catch {
        // killed before it wrote anything
      }
      const name = relative(process.cwd(), file);
      process.stdout.write(`\n=== ${name} (${((Date.now() - fileStart) / 1000).toFixed(1)} s)\n${Buffer.concat(output).toString("utf8")}`);
      resolve({ file: name, code, signal, timedOut, ...parseResults(text) });
    });
  });
}

/** The engine check: what this run's servers left. Scoped to the run's ledger, so other runs and older things are never looked at. */
async function engineCheck() {
  let engine;
  try {
    engine = await import(new URL("../test/dist/engine.js", import.meta.url).href);
  } catch {
    return { skipped: true };
  }
  const servers = engine.recordedServers(runDir);
  const found = await engine.leftovers(servers);
  if (!found.containers.length && !found.images.length) return { servers: servers.size, clean: true };
  const description = engine.describe(found);
  // report, then leave the engine as the run found it
  const left = await engine.removeLeftovers(servers, true);
  return { servers: servers.size, clean: false, description, stillLeft: engine.describe(left) };
}

async function main() {
  if (!selected.length) {
    console.error(`run-tests: no test file matches ${filter.length ? filter.join(", ") : "(no compiled tests: run tsc -b)"}`);
    return 1;
  }
  console.log(`run-tests: ${selected.length} file(s), ${concurrency} at a time; per test ${testTimeoutMs} ms, per file ${fileTimeoutMs} ms; run ${runId}`);
  const queue = [...selected];
  const results = [];
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    for (let file = queue.shift(); file; file = queue.shift()) results.push(await runFile(file));
  }));

  let check;
  try {
    check = await engineCheck();
  } catch (error) {
    check = { clean: false, description: `the engine check failed: ${error.message}` };
  }

  const totals = results.reduce((t, r) => ({ tests: t.tests + r.tests, pass: t.pass + r.pass, fail: t.fail + r.fail, cancelled: t.cancelled + r.cancelled }), { tests: 0, pass: 0, fail: 0, cancelled: 0 });
  const problems = [];
  for (const r of results.sort((a, b) => a.file.localeCompare(b.file))) {
    if (r.timedOut) problems.push(`${r.file}: still running ${fileTimeoutMs + 60_000} ms after it started, killed${r.failures.length ? ` (failed: ${r.failures.join("; ")})` : ""}`);
    else if (r.code !== 0) problems.push(`${r.file}: exit ${r.code ?? r.signal}${r.failures.length ? `; failed: ${r.failures.join("; ")}` : ""}`);
    else if (r.tests === 0) problems.push(`${r.file}: ran no test`);
  }
  if (totals.tests === 0) problems.push("no test ran");
  if (check.clean === false) problems.push(`the engine holds what this run made: ${check.description}${check.stillLeft ? `; could not remove: ${check.stillLeft}` : "; removed now"}`);

  console.log(`\n=== summary (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`files ${results.length}, tests ${totals.tests}, passed ${totals.pass}, failed ${totals.fail}, cancelled ${totals.cancelled}`);
  console.log(check.skipped ? "engine check: skipped (test/dist/engine.js not built)" : `engine check: ${check.clean ? "nothing left" : "LEFTOVERS"} (${check.servers ?? "?"} server(s) this run started)`);
  for (const problem of problems) console.log(`FAIL ${problem}`);
  if (!problems.length) console.log("ok");
  return problems.length ? 1 : 0;
}

const code = await main().catch((error) => {
  console.error(`run-tests: ${error.stack ?? error}`);
  return 1;
});
rmSync(runDir, { recursive: true, force: true });
process.exit(code);
