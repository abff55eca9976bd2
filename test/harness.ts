// Starts a real Strata server on a free port with a temporary home, against
// the machine's engine, and cleans up everything it made: its containers, its
// images and tags (by its label and its snapshot repository), and its home,
// whether the test passed or not.
import { mkdtempSync, rmSync } from "node:fs";
import { test as nodeTest, type TestContext, type TestOptions } from "node:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type ServerConfig, type StrataServer } from "@strata/server";
import { Strata } from "@strata/sdk";
import { leftovers, recordServer, removeEngineContainer, removeLeftovers, type Leftovers } from "./engine.js";

/** The offline base image the setup script builds. */
export const baseImage = "strata-test/busybox:latest";

export interface TestServer {
  server: StrataServer;
  strata: Strata;
  home: string;
  logs: Record<string, unknown>[];
  /** Containers on the engine that belong to this server, counted by asking the engine directly. */
  containers(): Promise<number>;
  /** What the engine holds that this server made (containers, images and tags), asked directly. */
  leftovers(): Promise<Leftovers>;
  /** Stops the server, keeping its home and containers (for restart stories). */
  stop(): Promise<void>;
  /** Starts a server again on the same home. */
  restart(options?: Partial<ServerConfig>): Promise<TestServer>;
  /**
   * Removes every container and image this server made, stops it and deletes
   * the home. Each step runs even when an earlier one failed; the first
   * failure is thrown at the end.
   */
  close(): Promise<void>;
}

/** How long one test may run (STRATA_TEST_TIMEOUT_MS, default 5 minutes). */
export const testTimeoutMs = Number(process.env.STRATA_TEST_TIMEOUT_MS ?? 300_000);

type TestFn = (t: TestContext) => Promise<void> | void;

/**
 * node:test's `test` with a timeout by default ({@link testTimeoutMs}): a test
 * that hangs fails on its own, and its `t.after` teardown still runs. Options
 * given win.
 */
export function test(name: string, fn: TestFn): Promise<void>;
export function test(name: string, options: TestOptions, fn: TestFn): Promise<void>;
export function test(name: string, optionsOrFn: TestOptions | TestFn, maybeFn?: TestFn): Promise<void> {
  const [options, fn] = typeof optionsOrFn === "function" ? [{}, optionsOrFn] : [optionsOrFn, maybeFn!];
  return nodeTest(name, { timeout: testTimeoutMs, ...options }, fn);
}

/** Ids of every server this process started: what a final sweep removes. */
const started = new Set<string>();
let open = 0;

/** Rejects when the promise does not settle in time, naming what hung. */
export async function bounded<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish in ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every step, then throws the first failure. */
async function allSteps(steps: (() => Promise<unknown>)[]): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      first ??= error;
    }
  }
  if (first !== undefined) {
    // a hook's failure is reported without its cause: say it here
    console.error(`test server teardown failed: ${(first as Error)?.stack ?? String(first)}`);
    throw first;
  }
}

export async function startTestServer(options: Partial<ServerConfig> = {}, home?: string): Promise<TestServer> {
  const dir = home ?? mkdtempSync(join(tmpdir(), "strata-test-"));
  const logs: Record<string, unknown>[] = [];
  let server: StrataServer;
  try {
    server = await startServer({ port: 0, host: "127.0.0.1", home: dir, log: (line) => logs.push(line), ...options });
  } catch (error) {
    if (!home) rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const serverId = server.context.serverId;
  started.add(serverId);
  recordServer(serverId);
  open++;
  const mine = new Set([serverId]);
  const strata = new Strata({ baseUrl: server.url, apiKey: options.apiKey });
  let stopped = false;
  const self: TestServer = {
    server,
    strata,
    home: dir,
    logs,
    containers: async () => (await leftovers(mine)).containers.length,
    leftovers: () => leftovers(mine),
    async stop() {
      if (stopped) return;
      stopped = true;
      open--;
      await bounded(server.close(), 60_000, "server close");
    },
    restart: (more = {}) => startTestServer({ ...options, ...more }, dir),
    async close() {
      await allSteps([
        async () => {
          if (stopped) return;
          const containers = (await leftovers(mine)).containers;
          await Promise.all(containers.map((c) => removeEngineContainer(c.id)));
        },
        () => self.stop(),
        // images something else still uses (another test server's sandbox) stay for the final sweep
        () => removeLeftovers(mine),
        async () => rmSync(dir, { recursive: true, force: true }),
        async () => {
          if (open === 0) await removeLeftovers(started, true);
        },
      ]);
    },
  };
  return self;
}

/** Closes servers in parallel; every close runs, the first failure is thrown after all ended. */
export async function closeAll(...servers: (TestServer | undefined)[]): Promise<void> {
  const results = await Promise.allSettled(servers.filter((s): s is TestServer => !!s).map((s) => s.close()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** Waits until check() is true, polling; fails after timeoutMs (a bound against hangs, not a timing under test). */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 60000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The StrataError code a promise rejects with. */
export async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: string }).code ?? `not a StrataError: ${String(error)}`;
  }
  return "no error";
}
