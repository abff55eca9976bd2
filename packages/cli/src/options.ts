// Parsing of the CLI's arguments and the options every client command shares.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { Strata } from "@strata/sdk";

export const clientOptions = {
  url: { type: "string" },
  "api-key": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies ParseArgsConfig["options"];

export class UsageError extends Error {}

/** Runs a parseArgs call, turning its complaints into usage errors. */
export function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export { parseArgs };

export function client(values: { url?: string; "api-key"?: string }): Strata {
  return new Strata({
    baseUrl: values.url ?? process.env.STRATA_URL ?? "http://127.0.0.1:7420",
    apiKey: values["api-key"] ?? process.env.STRATA_API_KEY,
  });
}

/** `k=v` pairs into a record. */
export function pairs(list: string[] | undefined, what: string): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const at = item.indexOf("=");
    if (at <= 0) throw new UsageError(`${what} must be KEY=VALUE, got '${item}'`);
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
}

export function number(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) throw new UsageError(`${what} must be a number, got '${value}'`);
  return parsed;
}

/** Ctrl-C aborts the signal once; a second Ctrl-C exits at once. */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once("SIGINT", () => {
    controller.abort(new Error("interrupted"));
    process.once("SIGINT", () => process.exit(130));
  });
  return controller.signal;
}
