// `strata serve`: runs the HTTP server in the foreground.
import { startServer } from "@strata/server";
import { number, parseArgs, usage } from "../options.js";

export const serveHelp = `Usage: strata serve [options]

Starts the Strata server on this machine's container engine.

Options:
  --port N            port (env STRATA_PORT, default 7420)
  --host HOST         address to bind (env STRATA_HOST, default 127.0.0.1)
  --home DIR          index and data (env STRATA_HOME, default ~/.strata)
  --docker-host URL   engine endpoint (env DOCKER_HOST, default unix:///var/run/docker.sock)
  --api-key KEY       require 'Authorization: Bearer KEY' (env STRATA_API_KEY);
                      needed to bind a non-loopback host
  --max-upload-bytes N  largest file upload accepted (env STRATA_MAX_UPLOAD_BYTES, default 1 GiB)
`;

export async function serve(args: string[]): Promise<number> {
  const { values } = usage(() => parseArgs({ args: args, allowPositionals: true, options: {
    port: { type: "string" },
    host: { type: "string" },
    home: { type: "string" },
    "docker-host": { type: "string" },
    "api-key": { type: "string" },
    "max-upload-bytes": { type: "string" },
    help: { type: "boolean", short: "h" },
  } }));
  if (values.help) {
    process.stdout.write(serveHelp);
    return 0;
  }
  const server = await startServer({
    port: number(values.port, "--port"),
    host: values.host,
    home: values.home,
    dockerHost: values["docker-host"],
    apiKey: values["api-key"],
    maxUploadBytes: number(values["max-upload-bytes"], "--max-upload-bytes"),
  });
  server.config.log({ event: "listening", url: server.url, home: server.config.home, engine: server.config.dockerHost });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await server.close();
  return 0;
}
