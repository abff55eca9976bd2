// A CI system builds snapshots from build contexts and watches the log live.
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { packContext } from "@strata/sdk";
import { context, removeContexts } from "./contexts.js";
import { baseImage, errorCode, eventually, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer({ maxContextBytes: 5_000_000 });
});
after(async () => {
  await t.close();
  removeContexts();
});


async function post(form: FormData): Promise<{ status: number; body: { error?: { code: string; message: string }; buildId?: string } }> {
  const response = await fetch(`${t.server.url}/v1/builds`, { method: "POST", body: form });
  return { status: response.status, body: (await response.json()) as never };
}

/**
 * Lets a build waiting on `/tmp/go` carry on: the build's own container (found
 * on the engine by the Dockerfile's marker label) gets the file.
 */
async function releaseBuild(marker: string): Promise<void> {
  const engine = t.server.context.engine;
  let containerId: string | undefined;
  await eventually(async () => {
    containerId = (await engine.listContainers({ "strata.test.live": marker })).find((c) => c.state === "running")?.id;
    return !!containerId;
  }, 60_000, "the build's container");
  await engine.exec(containerId!, { cmd: ["touch", "/tmp/go"] }, { onOutput: () => {} });
}

test("build and run: .dockerignore, build args, the log live, a named snapshot", async () => {
  const marker = randomUUID();
  const dir = context({
    Dockerfile: [
      `FROM ${baseImage}`,
      `LABEL strata.test.live=${marker}`,
      "ARG GREETING=hello",
      "COPY app /app",
      'RUN echo "$GREETING" > /greeting',
      // the build waits here until the test, having seen this line, lets it go
      "RUN echo waiting-for-the-test && while [ ! -e /tmp/go ]; do sleep 0.1; done && echo released",
      'CMD ["sh"]',
      "",
    ].join("\n"),
    ".dockerignore": "app/secret.txt\n**/*.tmp\napp/logs\n",
    "app/keep.txt": "kept",
    "app/secret.txt": "never sent",
    "app/cache.tmp": "tmp",
    "app/logs/a.log": "log",
  });
  const lines: string[] = [];
  let finished = false;
  let seenWhileBuilding = false;
  let released: Promise<void> | undefined;
  const building = t.strata.snapshots.build({
    context: dir, buildArgs: { GREETING: "bonjour" }, name: "built-app", labels: { ci: "yes" },
    onLog: (line) => {
      lines.push(line);
      if (line.includes("waiting-for-the-test") && !released) {
        seenWhileBuilding = !finished;
        released = releaseBuild(marker);
      }
    },
  }).finally(() => (finished = true));
  const snapshot = await building;
  await released;
  assert.ok(seenWhileBuilding, "the log line arrived while the build was still running");
  assert.ok(lines.findIndex((line) => line.trim() === "released") > lines.findIndex((line) => line.includes("waiting-for-the-test")), lines.join("\n"));
  assert.equal(snapshot.info.status, "ready");
  assert.equal(snapshot.info.kind, "container");
  assert.equal(snapshot.info.name, "built-app");
  assert.deepEqual(snapshot.info.labels, { ci: "yes" });
  assert.equal(snapshot.info.baseImage.ref, baseImage);
  assert.ok(lines.some((line) => /Step 1\/\d+ : FROM/.test(line)), lines.join("\n"));

  const sandbox = await t.strata.sandboxes.create({ snapshotId: "built-app" });
  assert.equal((await sandbox.exec("cat /greeting")).stdout, "bonjour\n");
  assert.equal((await sandbox.exec("ls /app | sort")).stdout, "keep.txt\n");
  await sandbox.delete();

  const builds = await fetch(`${t.server.url}/v1/builds/nope`);
  assert.equal(builds.status, 404);

  // the name is taken: refused, unless replace moves it
  const form = new FormData();
  form.set("name", "built-app");
  form.set("context", new Blob([await bytes(packContext(dir))]), "context.tar.gz");
  const clash = await post(form);
  assert.equal(clash.status, 409);
  assert.equal(clash.body.error?.code, "snapshot_name_taken");
  // (its steps come from the cache; were the waiting step run again, it is let go the same way)
  let again: Promise<void> | undefined;
  const replaced = await t.strata.snapshots.build({
    context: dir, name: "built-app", replace: true,
    onLog: (line) => {
      if (line.includes("waiting-for-the-test")) again ??= releaseBuild(marker);
    },
  });
  await again;
  assert.equal((await t.strata.snapshots.get("built-app")).id, replaced.id);
  assert.equal((await snapshot.refresh()).name, undefined);
  await replaced.delete();
  await snapshot.delete();
});

async function bytes(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test("a failing RUN and a missing base image end failed with the engine's message", async () => {
  const failing = context({ Dockerfile: `FROM ${baseImage}\nRUN echo about to fail && exit 3\n` });
  const lines: string[] = [];
  await assert.rejects(t.strata.snapshots.build({ context: failing, onLog: (line) => lines.push(line) }), (error: { code?: string; message?: string }) => {
    assert.equal(error.code, "build_failed");
    assert.match(error.message ?? "", /returned a non-zero code: 3/);
    return true;
  });
  assert.ok(lines.some((line) => line.includes("about to fail")));

  const missing = context({ Dockerfile: "FROM strata-test/not-built:9\nRUN true\n" });
  await assert.rejects(t.strata.snapshots.build({ context: missing }), (error: { code?: string; message?: string }) => {
    assert.equal(error.code, "image_not_found");
    assert.match(error.message ?? "", /strata-test\/not-built:9/);
    return true;
  });
});

test("bad contexts are refused before anything is queued", async () => {
  const noDockerfile = context({ "readme.txt": "no dockerfile here" });
  assert.equal(await errorCode(t.strata.snapshots.build({ context: noDockerfile })), "dockerfile_not_found");
  assert.equal(await errorCode(t.strata.snapshots.build({ context: noDockerfile, dockerfile: "../outside" })), "bad_request");
  assert.equal(await errorCode(t.strata.snapshots.build({ context: new Uint8Array(4096).fill(7) })), "context_invalid");
  const huge = context({ Dockerfile: `FROM ${baseImage}\n` });
  writeFileSync(join(huge, "big.bin"), Buffer.from(Array.from({ length: 6_000_000 }, () => Math.floor(Math.random() * 256))));
  assert.equal(await errorCode(t.strata.snapshots.build({ context: huge })), "context_too_large");
  const missingContext = new FormData();
  missingContext.set("name", "x");
  assert.equal((await post(missingContext)).status, 400);
});

test("cancel mid-build stops it and leaves no image or container", async () => {
  const marker = randomUUID();
  const dir = context({ Dockerfile: `FROM ${baseImage}\nLABEL strata.test.cancel=${marker}\nRUN echo sleeping && sleep 60\n` });
  const controller = new AbortController();
  const building = t.strata.snapshots.build({
    context: dir,
    signal: controller.signal,
    onLog: (line) => {
      if (line.includes("sleeping")) controller.abort(new Error("user cancelled"));
    },
  });
  await assert.rejects(building, /user cancelled/);
  const engine = t.server.context.engine;
  await eventually(async () => (await engine.listContainers({ "strata.test.cancel": marker })).length === 0, 30000, "build containers removed");
  await eventually(async () => (await engine.listImages({ "strata.test.cancel": marker })).length === 0, 30000, "build images removed");
});

test("the log is kept: a late subscriber gets it all, a reconnect with Last-Event-ID resumes without duplicates", async () => {
  const dir = context({ Dockerfile: `FROM ${baseImage}\nRUN for i in 1 2 3 4 5; do echo line-$i; done\nRUN echo second\n` });
  const form = new FormData();
  form.set("context", new Blob([await bytes(packContext(dir))]), "context.tar.gz");
  const accepted = await post(form);
  assert.equal(accepted.status, 202);
  const id = accepted.body.buildId!;
  const read = async (lastEventId?: string, stopAfter?: number) => {
    const controller = new AbortController();
    const response = await fetch(`${t.server.url}/v1/builds/${id}/logs`, {
      headers: lastEventId ? { "last-event-id": lastEventId } : {}, signal: controller.signal,
    });
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const events: { id: number; event: string; data: string }[] = [];
    let text = "";
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          if (block.startsWith(":")) continue;
          const fields = Object.fromEntries(block.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]));
          events.push({ id: Number(fields.id), event: fields.event!, data: fields.data! });
          if (stopAfter && events.length >= stopAfter) {
            controller.abort();
            return events;
          }
        }
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
    return events;
  };
  const first = await read(undefined, 3);
  assert.deepEqual(first.map((e) => e.id), [1, 2, 3]);
  const rest = await read("3");
  assert.equal(rest[0]!.id, 4);
  const whole = await read();
  assert.deepEqual([...first, ...rest].map((e) => e.id), whole.map((e) => e.id));
  assert.equal(whole[whole.length - 1]!.event, "done");
  assert.ok(whole.filter((e) => e.event === "log").some((e) => e.data.includes("line-5")));
  const build = (await (await fetch(`${t.server.url}/v1/builds/${id}`)).json()) as { status: string; snapshotId: string; architecture: string };
  assert.equal(build.status, "succeeded");
  assert.equal(build.architecture, "amd64");
  await t.strata.snapshots.delete(build.snapshotId);
});

test("three builds at once all succeed", async () => {
  const results = await Promise.all([1, 2, 3].map((n) => t.strata.snapshots.build({ context: context({ Dockerfile: `FROM ${baseImage}\nRUN echo build-${n} > /which\n` }) })));
  assert.equal(new Set(results.map((s) => s.id)).size, 3);
  for (const [i, snapshot] of results.entries()) {
    const sandbox = await t.strata.sandboxes.create({ snapshotId: snapshot.id });
    assert.equal((await sandbox.exec("cat /which")).stdout, `build-${i + 1}\n`);
    await sandbox.delete();
    await snapshot.delete();
  }
});
