// The `strata` command: dispatches to a command and turns failures into a
// message and a non-zero exit.
import { StrataError } from "@strata/sdk";
import { sandbox, sandboxHelp } from "./commands/sandbox.js";
import { serve, serveHelp } from "./commands/serve.js";
import { gc, snapshot, snapshotHelp } from "./commands/snapshot.js";
import { build, buildHelp } from "./commands/build.js";
import { UsageError } from "./options.js";

const help = `Usage: strata <command> [options]

Self-hosted sandboxes with snapshots.

Commands:
  serve      start the server (strata serve --help)
  sandbox    create, list, exec in and remove sandboxes (strata sandbox --help)
  snapshot   capture, list, inspect and remove snapshots (strata snapshot --help)
  build      build a snapshot from a directory or tar, log printed live (strata build --help)
  gc         remove engine images and files no snapshot owns

Clients talk to --url (env STRATA_URL, default http://127.0.0.1:7420).
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return serve(rest);
    case "sandbox":
    case "sandboxes":
      return sandbox(rest);
    case "snapshot":
    case "snapshots":
      return snapshot(rest);
    case "gc":
      return gc(rest);
    case "build":
      return build(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(help);
      return 0;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`strata: ${error.message}\n\n${process.argv[2] === "serve" ? serveHelp : process.argv[2] === "sandbox" ? sandboxHelp : process.argv[2] === "snapshot" ? snapshotHelp : process.argv[2] === "build" ? buildHelp : help}`);
      process.exitCode = 2;
    } else if ((error as Error)?.message === "interrupted") {
      process.stderr.write("strata: interrupted\n");
      process.exitCode = 130;
    } else if (error instanceof StrataError) {
      process.stderr.write(`strata: ${error.message} (${error.code})\n`);
      process.exitCode = 1;
    } else {
      const cause = (error as { cause?: { code?: string } }).cause;
      const detail = cause?.code === "ECONNREFUSED" ? "the server does not answer; is `strata serve` running?" : (error as Error).message;
      process.stderr.write(`strata: ${detail}\n`);
      process.exitCode = 1;
    }
  },
);
