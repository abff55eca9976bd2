// `strata build DIR`: build a snapshot from a directory, printing the log live;
// Ctrl-C cancels the build on the server.
import { client, clientOptions, interruptSignal, pairs, parseArgs, usage, UsageError } from "../options.js";
import { printJson } from "../output.js";

export const buildHelp = `Usage: strata build DIR|FILE [options]

Builds a container snapshot from a build context: a directory (packed honouring
.dockerignore) or a .tar / .tar.gz file. The log is printed as it comes.

Options:
  --name NAME          name the snapshot (--replace moves an existing name to it)
  -f, --file PATH      Dockerfile inside the context (default Dockerfile)
  --build-arg K=V      build argument (repeatable)
  --label K=V          snapshot label (repeatable)
  --replace            re-point NAME if another snapshot holds it
  --json               print the snapshot as JSON at the end
`;

export async function build(args: string[]): Promise<number> {
  const { values, positionals } = usage(() => parseArgs({ args, allowPositionals: true, options: {
    ...clientOptions, name: { type: "string" }, file: { type: "string", short: "f" }, "build-arg": { type: "string", multiple: true },
    label: { type: "string", multiple: true }, replace: { type: "boolean" },
  } }));
  if (values.help) {
    process.stdout.write(buildHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("expected one DIR or FILE");
  const signal = interruptSignal();
  const snapshot = await client(values).snapshots.build({
    context: positionals[0]!,
    dockerfile: values.file,
    buildArgs: pairs(values["build-arg"], "--build-arg"),
    labels: pairs(values.label, "--label"),
    name: values.name,
    replace: values.replace,
    onLog: (line) => process.stdout.write(`${line}\n`),
    signal,
  });
  if (values.json) printJson(snapshot.info);
  else process.stderr.write(`built snapshot ${snapshot.id}${snapshot.info.name ? ` (${snapshot.info.name})` : ""}\n`);
  return 0;
}
