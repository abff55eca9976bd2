// `strata sandbox ...`: create, list, inspect, exec in, stop, start, remove sandboxes.
import type { SandboxStatus } from "@strata/sdk";
import { client, clientOptions, interruptSignal, number, pairs, parseArgs, usage, UsageError } from "../options.js";
import { printJson, sandboxDetails, sandboxTable } from "../output.js";

export const sandboxHelp = `Usage: strata sandbox <command> [options]

Commands:
  create IMAGE [-- CMD...]   create and start a sandbox from an image
  create --snapshot REF [-- CMD...]
                             ... or from a container snapshot (id, name or digest)
      --dir-snapshot REF[:PATH]   restore a directory snapshot (repeatable)
  create --memory-snapshot REF  ... or continue the processes of a memory snapshot (gvisor)
  create --image-uri HOST/REPO@sha256:... [-- CMD...]
                             ... or from a snapshot pushed to a registry (pulled when missing)
      --name NAME  --env K=V  --label K=V  --cpus N  --memory-mb N  --pids N
      --no-network  --timeout SECONDS  --isolation runc|gvisor
  ls [--status S] [--label K=V]   list sandboxes
  get ID                      show a sandbox
  exec ID [--cwd DIR] [--env K=V] [--timeout-ms N] [-i] -- CMD...
                              run a command, streaming its output; exits with its code;
                              -i (--stdin) sends this command's standard input to it (text)
  stop ID [--timeout SECONDS] stop a sandbox
  start ID                    start a stopped sandbox
  rm ID...                    remove sandboxes
  fork ID [--count N]         fork a running gvisor sandbox: N sandboxes continuing its processes;
                              prints the memory snapshot's id ("snapshot ID"), then one sandbox id a line

Common options: --url URL (env STRATA_URL)  --api-key KEY (env STRATA_API_KEY)  --json
`;

/** This process's standard input until its end, as UTF-8 text. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function split(args: string[]): [string[], string[]] {
  const at = args.indexOf("--");
  return at < 0 ? [args, []] : [args.slice(0, at), args.slice(at + 1)];
}

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected one ${what}`);
  return positionals[0]!;
}

export async function sandbox(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  const [own, trailing] = split(rest);
  switch (command) {
    case "create": {
      const { values, positionals } = usage(() => parseArgs({ args: own, allowPositionals: true, options: {
        ...clientOptions,
        name: { type: "string" },
        env: { type: "string", multiple: true },
        label: { type: "string", multiple: true },
        cpus: { type: "string" },
        "memory-mb": { type: "string" },
        pids: { type: "string" },
        "no-network": { type: "boolean" },
        timeout: { type: "string" },
        isolation: { type: "string" },
        snapshot: { type: "string" },
        "dir-snapshot": { type: "string", multiple: true },
        "image-uri": { type: "string" },
        "memory-snapshot": { type: "string" },
      } }));
      const fromSnapshot = values.snapshot ?? values["image-uri"] ?? values["memory-snapshot"];
      const image = fromSnapshot ? undefined : one(positionals, "IMAGE");
      if (fromSnapshot && positionals.length) throw new UsageError("give IMAGE, --snapshot or --image-uri, not several");
      const isolation = values.isolation;
      if (isolation !== undefined && isolation !== "runc" && isolation !== "gvisor") throw new UsageError("--isolation must be runc or gvisor");
      const resources = {
        cpus: number(values.cpus, "--cpus"),
        memoryMb: number(values["memory-mb"], "--memory-mb"),
        pids: number(values.pids, "--pids"),
      };
      const created = await client(values).sandboxes.create(
        {
          image,
          snapshotId: values.snapshot,
          imageUri: values["image-uri"],
          memorySnapshotId: values["memory-snapshot"],
          directorySnapshots: values["dir-snapshot"]?.map((spec) => {
            const at = spec.indexOf(":/");
            return at < 0 ? { snapshotId: spec } : { snapshotId: spec.slice(0, at), path: spec.slice(at + 1) };
          }),
          name: values.name,
          cmd: trailing.length ? trailing : undefined,
          env: pairs(values.env, "--env"),
          labels: pairs(values.label, "--label"),
          isolation,
          resources: Object.values(resources).some((v) => v !== undefined) ? resources : undefined,
          network: values["no-network"] ? false : undefined,
          timeoutSeconds: number(values.timeout, "--timeout"),
        },
        { signal: interruptSignal() },
      );
      if (values.json) printJson(created.info);
      else process.stdout.write(`${created.id}\n`);
      return 0;
    }
    case "ls": {
      const { values } = usage(() => parseArgs({ args: own, allowPositionals: true, options: { ...clientOptions, status: { type: "string" }, label: { type: "string", multiple: true } } }));
      const list = await client(values).sandboxes.list({ status: values.status as SandboxStatus | undefined, labels: pairs(values.label, "--label") });
      if (values.json) printJson(list.map((s) => s.info));
      else process.stdout.write(`${sandboxTable(list.map((s) => s.info))}\n`);
      return 0;
    }
    case "get": {
      const { values, positionals } = usage(() => parseArgs({ args: own, allowPositionals: true, options: clientOptions }));
      const found = await client(values).sandboxes.get(one(positionals, "ID"));
      if (values.json) printJson(found.info);
      else process.stdout.write(`${sandboxDetails(found.info)}\n`);
      return 0;
    }
    case "exec": {
      const { values, positionals } = usage(() => parseArgs({ args: own, allowPositionals: true, options: {
        ...clientOptions,
        cwd: { type: "string" },
        env: { type: "string", multiple: true },
        "timeout-ms": { type: "string" },
        stdin: { type: "boolean", short: "i" },
      } }));
      if (!trailing.length) throw new UsageError("give the command after --");
      const target = await client(values).sandboxes.get(one(positionals, "ID"));
      // -i: what this process reads until its end goes to the command's standard input (text)
      const stdin = values.stdin ? await readStdin() : undefined;
      const options = {
        cwd: values.cwd, env: pairs(values.env, "--env"), timeoutMs: number(values["timeout-ms"], "--timeout-ms"), signal: interruptSignal(),
        ...(stdin !== undefined ? { stdin } : {}),
      };
      if (values.json) {
        const result = await target.exec(trailing, options);
        printJson(result);
        return result.exitCode;
      }
      // the exact bytes, so binary output piped to a file arrives intact
      const outcome = await target.execStream(trailing, {
        ...options,
        encoding: "base64",
        onStdout: (data) => process.stdout.write(Buffer.from(data, "base64")),
        onStderr: (data) => process.stderr.write(Buffer.from(data, "base64")),
      });
      if (outcome.timedOut) {
        process.stderr.write(outcome.killed
          ? `strata: the command timed out after ${options.timeoutMs} ms and was killed\n`
          : `strata: the command timed out after ${options.timeoutMs} ms; it could not be killed and may still run\n`);
      } else if (outcome.killed) process.stderr.write("strata: the command was killed when its sandbox stopped\n");
      return outcome.exitCode;
    }
    case "stop":
    case "start": {
      const { values, positionals } = usage(() => parseArgs({ args: own, allowPositionals: true, options: { ...clientOptions, timeout: { type: "string" } } }));
      const target = await client(values).sandboxes.get(one(positionals, "ID"));
      const info = command === "stop" ? await target.stop({ timeoutSeconds: number(values.timeout, "--timeout") }) : await target.start();
      if (values.json) printJson(info);
      else process.stdout.write(`${info.id} ${info.status}\n`);
      return 0;
    }
    case "fork": {
      const { values, positionals } = usage(() => parseArgs({ args: own, allowPositionals: true, options: { ...clientOptions, count: { type: "string" } } }));
      const target = await client(values).sandboxes.get(one(positionals, "ID"));
      const forks = await target.fork(number(values.count, "--count") ?? 1);
      if (values.json) printJson({ snapshotId: forks.snapshotId, sandboxes: forks.sandboxes.map((f) => f.info) });
      else process.stdout.write(`snapshot ${forks.snapshotId}\n${forks.sandboxes.map((f) => `${f.id}\n`).join("")}`);
      return 0;
    }
    case "rm": {
      const { values, positionals } = usage(() => parseArgs({ args: own, allowPositionals: true, options: clientOptions }));
      if (!positionals.length) throw new UsageError("expected at least one ID");
      const strata = client(values);
      for (const id of positionals) {
        await (await strata.sandboxes.get(id)).delete();
        if (!values.json) process.stdout.write(`${id}\n`);
      }
      if (values.json) printJson({ removed: positionals });
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(sandboxHelp);
      return 0;
    default:
      throw new UsageError(`unknown command 'sandbox ${command}'`);
  }
}
