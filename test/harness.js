// Starts a real Strata server on a free port with a temporary home, against
// the machine's engine, and cleans up everything it made.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "@strata/server";
import { Strata } from "@strata/sdk";
/** The offline base image the setup script builds. */
export const baseImage = "strata-test/busybox:latest";
export async function startTestServer(options = {}, home) {
    const dir = home ?? mkdtempSync(join(tmpdir(), "strata-test-"));
    const logs = [];
    const server = await startServer({ port: 0, host: "127.0.0.1", home: dir, log: (line) => logs.push(line), ...options });
    const strata = new Strata({ baseUrl: server.url, apiKey: options.apiKey });
    let stopped = false;
    const self = {
        server,
        strata,
        home: dir,
        logs,
        containers: async () => (await server.context.engine.listContainers({ "dev.strata.server": server.context.serverId })).length,
        async stop() {
            if (!stopped)
                await server.close();
            stopped = true;
        },
        restart: (more = {}) => startTestServer({ ...options, ...more }, dir),
        async close() {
            if (!stopped) {
                const containers = await server.context.engine.listContainers({ "dev.strata.server": server.context.serverId });
                await Promise.all(containers.map((c) => server.context.engine.removeContainer(c.id)));
                await self.stop();
            }
            rmSync(dir, { recursive: true, force: true });
        },
    };
    return self;
}
/** Waits until check() is true, polling; fails after timeoutMs. */
export async function eventually(check, timeoutMs = 15000, what = "condition") {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (await check())
            return;
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
}
/** The StrataError code a promise rejects with. */
export async function errorCode(promise) {
    try {
        await promise;
    }
    catch (error) {
        return error.code ?? `not a StrataError: ${String(error)}`;
    }
    return "no error";
}
//# sourceMappingURL=harness.js.map