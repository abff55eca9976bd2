// `strata snapshot ...` and `strata gc`: capture, list, inspect and remove snapshots.
import type { SnapshotInfo, SnapshotKind, SnapshotStatus } from "@strata/sdk";
import { client, clientOptions, interruptSignal, number, pairs, parseArgs, usage, UsageError } from "../options.js";
import { printJson, table } from "../output.js";
import { bytes, progress, transferBar } from "../progress.js";
import { statSync } from "node:fs";

export const snapshotHelp = `Usage: strata snapshot <command> [options]

Commands:
  create SANDBOX [--name NAME] [--label K=V] [--no-wait]
                        capture the sandbox's whole filesystem; waits until ready
  create SANDBOX --memory [--name NAME]
                        checkpoint a running gvisor sandbox's processes and filesystem
  create SANDBOX --dir PATH [--exclude GLOB]... [--name NAME] [--label K=V]
                        capture one directory as a content-addressed archive
  verify REF            recompute and check the manifest, image and blob digests
  ls [--kind K] [--status S] [--sandbox ID] [--label K=V] [--limit N] [--all]
                        list snapshots, newest first
  get REF               show a snapshot (REF: id, name or digest)
  rm REF... [--force]   delete snapshots (--force: even with children or while creating)
  export REF -o FILE [--with-parents] [--with-image] [--no-compress]
                        write an archive (.tar.zst), with a progress bar
  import FILE           import an archive, with a progress bar
  reindex               rebuild the server's index from the manifests on disk
  push REF [--repository NAME]
                        push to the server's registry; prints the imageUri (restore it on any
                        server with: strata sandbox create --image-uri URI)

Restore with: strata sandbox create --snapshot REF
Common options: --url URL (env STRATA_URL)  --api-key KEY (env STRATA_API_KEY)  --json
`;

function details(s: SnapshotInfo): string {
  const lines: [string, string][] = [
    ["id", s.id],
    ["name", s.name ?? ""],
    ["kind", s.kind],
    ["status", s.status + (s.error ? ` (${s.error.code}: ${s.error.message})` : "")],
    ["digest", s.digest ?? ""],
    ["sandbox", s.sandboxId],
    ["parent", s.parent ?? ""],
    ["size", s.sizeBytes !== undefined ? `${bytes(s.sizeBytes)} added, ${bytes(s.imageSizeBytes)} in all` : ""],
    ["image", s.imageUri ?? ""],
    ["path", s.path ?? ""],
    ["exclude", (s.exclude ?? []).join(", ")],
    ["content", s.contentDigest ? `${s.contentDigest}, ${s.fileCount} files, ${bytes(s.storedBytes)} stored` : ""],
    ["base", `${s.baseImage.ref} (${s.baseImage.digest})`],
    ["labels", Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["created", s.createdAt],
    ["ready", s.readyAt ?? ""],
  ];
  return lines.filter(([, value]) => value !== "").map(([key, value]) => `${key.padEnd(8)} ${value}`).join("\n");
}

function listTable(list: SnapshotInfo[]): string {
  const rows = [["ID", "NAME", "KIND", "STATUS", "SIZE", "CREATED"]];
  for (const s of list) rows.push([s.id, s.name ?? "", s.kind, s.status, bytes(s.sizeBytes), s.createdAt]);
  return table(rows);
}

export async function snapshot(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "create": {
      const { values, positionals } = usage(() => parseArgs({ args: rest, allowPositionals: true, options: {
        ...clientOptions, name: { type: "string" }, label: { type: "string", multiple: true }, "no-wait": { type: "boolean" },
        dir: { type: "string" }, exclude: { type: "string", multiple: true }, memory: { type: "boolean" },
      } }));
      if (values.exclude && !values.dir) throw new UsageError("--exclude needs --dir");
      if (positionals.length !== 1) throw new UsageError("expected one SANDBOX");
      const strata = client(values);
      const signal = interruptSignal();
      const sandbox = await strata.sandboxes.get(positionals[0]!, { signal });
      const common = { name: values.name, labels: pairs(values.label, "--label"), signal };
      const created = values.dir
        ? await sandbox.snapshotDirectory(values.dir, { ...common, exclude: values.exclude })
        : await sandbox.snapshot({ ...common, ...(values.memory ? { kind: "memory" as const } : {}) });
      if (!values["no-wait"]) {
        const bar = values.json ? undefined : progress(`snapshot ${created.id}: capturing ${sandbox.id}`);
        try {
          await created.waitUntilReady({ signal, timeoutMs: Infinity, onProgress: (info) => bar?.update(`snapshot ${created.id}: ${info.status}`) });
        } catch (error) {
          bar?.done(`snapshot ${created.id}: ${signal.aborted ? "cancelled" : created.info.status}`);
          // Ctrl-C while waiting cancels the snapshot: nothing half-made stays behind.
          if (signal.aborted) await created.delete({ force: true }).catch(() => undefined);
          throw error;
        }
        const info = created.info;
        bar?.done(
          info.kind === "directory"
            ? `snapshot ${created.id}: ready, ${info.fileCount} files, ${bytes(info.sizeBytes)} (${bytes(info.storedBytes)} stored)`
            : `snapshot ${created.id}: ready, ${bytes(info.sizeBytes)} added`,
        );
      }
      if (values.json) printJson(created.info);
      else process.stdout.write(`${created.id}\n`);
      return 0;
    }
    case "ls": {
      const { values } = usage(() => parseArgs({ args: rest, allowPositionals: false, options: {
        ...clientOptions, kind: { type: "string" }, status: { type: "string" }, sandbox: { type: "string" },
        label: { type: "string", multiple: true }, limit: { type: "string" }, all: { type: "boolean" },
      } }));
      const strata = client(values);
      const found: SnapshotInfo[] = [];
      let cursor: string | undefined;
      do {
        const page = await strata.snapshots.list({
          kind: values.kind as SnapshotKind | undefined, status: values.status as SnapshotStatus | undefined,
          sandboxId: values.sandbox, labels: pairs(values.label, "--label"), limit: number(values.limit, "--limit"), cursor,
        });
        found.push(...page.snapshots.map((s) => s.info));
        cursor = values.all ? page.nextCursor : undefined;
      } while (cursor);
      if (values.json) printJson(found);
      else process.stdout.write(`${listTable(found)}\n`);
      return 0;
    }
    case "get": {
      const { values, positionals } = usage(() => parseArgs({ args: rest, allowPositionals: true, options: clientOptions }));
      if (positionals.length !== 1) throw new UsageError("expected one REF");
      const found = await client(values).snapshots.get(positionals[0]!);
      if (values.json) printJson(found.info);
      else process.stdout.write(`${details(found.info)}\n`);
      return 0;
    }
    case "verify": {
      const { values, positionals } = usage(() => parseArgs({ args: rest, allowPositionals: true, options: clientOptions }));
      if (positionals.length !== 1) throw new UsageError("expected one REF");
      const found = await client(values).snapshots.get(positionals[0]!);
      const report = await found.verify();
      if (values.json) printJson(report);
      else {
        for (const part of report.parts) {
          process.stdout.write(`${part.ok ? "ok  " : "FAIL"}  ${part.part.padEnd(8)} ${part.ref}${part.ok ? "" : `  ${part.code}: ${part.message}`}\n`);
        }
        process.stdout.write(report.ok ? "verified\n" : "verification failed\n");
      }
      return report.ok ? 0 : 1;
    }
    case "export": {
      const { values, positionals } = usage(() => parseArgs({ args: rest, allowPositionals: true, options: {
        ...clientOptions, output: { type: "string", short: "o" }, "with-parents": { type: "boolean" }, "with-image": { type: "boolean" },
        "no-compress": { type: "boolean" },
      } }));
      if (positionals.length !== 1) throw new UsageError("expected one REF");
      if (!values.output) throw new UsageError("give the archive file with -o FILE");
      const signal = interruptSignal();
      const found = await client(values).snapshots.get(positionals[0]!, { signal });
      const bar = transferBar(`export ${found.id}`);
      const { bytes } = await found.exportToFile(values.output, {
        withParents: values["with-parents"], withImage: values["with-image"], compression: values["no-compress"] ? "none" : "zstd",
        signal, onProgress: (n) => bar.update(n),
      });
      bar.done(`-> ${values.output}`);
      if (values.json) printJson({ snapshotId: found.id, file: values.output, bytes });
      return 0;
    }
    case "import": {
      const { values, positionals } = usage(() => parseArgs({ args: rest, allowPositionals: true, options: clientOptions }));
      if (positionals.length !== 1) throw new UsageError("expected one FILE");
      const file = positionals[0]!;
      const size = statSync(file).size;
      const bar = transferBar(`import ${file}`, size);
      const signal = interruptSignal();
      const result = await client(values).snapshots.importFile(file, { signal, onProgress: (n) => bar.update(n) });
      bar.done(`imported ${result.imported.length}, already present ${result.skipped.length}`);
      if (values.json) printJson({ snapshot: result.snapshot.info, imported: result.imported, skipped: result.skipped });
      else process.stdout.write(`${result.snapshot.id}\n`);
      return 0;
    }
    case "push": {
      const { values, positionals } = usage(() => parseArgs({ args: rest, allowPositionals: true, options: { ...clientOptions, repository: { type: "string" } } }));
      if (positionals.length !== 1) throw new UsageError("expected one REF");
      const signal = interruptSignal();
      const found = await client(values).snapshots.get(positionals[0]!, { signal });
      const layers = new Map<string, { current: number; total: number }>();
      const bar = transferBar(`push ${found.id}`);
      await found.push({
        repository: values.repository, signal,
        onProgress: (event) => {
          if (event.layer && event.total) layers.set(event.layer, { current: event.current ?? 0, total: event.total });
          bar.update([...layers.values()].reduce((sum, l) => sum + l.current, 0));
        },
      });
      bar.done(`-> ${found.info.imageUri}`);
      if (values.json) printJson(found.info);
      else process.stdout.write(`${found.info.imageUri}\n`);
      return 0;
    }
    case "reindex": {
      const { values } = usage(() => parseArgs({ args: rest, allowPositionals: false, options: clientOptions }));
      const report = await client(values).snapshots.reindex();
      if (values.json) printJson(report);
      else {
        process.stdout.write(`indexed ${report.snapshots} snapshot(s)\n`);
        for (const bad of report.malformed) process.stdout.write(`skipped ${bad.id}: ${bad.reason}\n`);
      }
      return 0;
    }
    case "rm": {
      const { values, positionals } = usage(() => parseArgs({ args: rest, allowPositionals: true, options: { ...clientOptions, force: { type: "boolean" } } }));
      if (!positionals.length) throw new UsageError("expected at least one REF");
      const strata = client(values);
      for (const ref of positionals) {
        await strata.snapshots.delete(ref, { force: values.force });
        if (!values.json) process.stdout.write(`${ref}\n`);
      }
      if (values.json) printJson({ removed: positionals });
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(snapshotHelp);
      return 0;
    default:
      throw new UsageError(`unknown command 'snapshot ${command}'`);
  }
}

export async function gc(args: string[]): Promise<number> {
  const { values } = usage(() => parseArgs({ args, allowPositionals: false, options: clientOptions }));
  const report = await client(values).gc();
  if (values.json) printJson(report);
  else {
    process.stdout.write(`removed ${report.removedImages.length} image(s), ${report.removedBlobs.length} blob(s), ${report.removedTempFiles} temp file(s); freed ${bytes(report.freedBytes)}\n`);
  }
  return 0;
}
