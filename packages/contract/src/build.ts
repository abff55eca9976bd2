// Request and reply schemas of builds: snapshots built from a build context.
import { Type, type Static } from "@sinclair/typebox";
import { limits } from "./limits.js";
import { Snapshot } from "./snapshot.js";

/** A build argument's name, as a Dockerfile's `ARG` declares it. */
export const BuildArgName = Type.String({ minLength: 1, maxLength: 256, pattern: "^[A-Za-z_][A-Za-z0-9_.-]*$" });

/** The `buildArgs` field of a build (JSON in the multipart form): name to value. */
export const BuildArgs = Type.Record(Type.String(), Type.String({ maxLength: limits.buildArgValueChars, pattern: "^[^\\u0000]*$" }), {
  propertyNames: BuildArgName,
  maxProperties: limits.buildArgs,
  description: `Values for the Dockerfile's ARGs: names are letters, digits, \`_\`, \`.\` and \`-\`, not starting with a digit, \`.\` or \`-\`; at most ${limits.buildArgs}, each value at most ${limits.buildArgValueChars} characters.`,
});
export type BuildArgs = Static<typeof BuildArgs>;

export const BuildStatus = Type.Union([
  Type.Literal("queued"),
  Type.Literal("running"),
  Type.Literal("succeeded"),
  Type.Literal("failed"),
  Type.Literal("cancelled"),
]);
export type BuildStatus = Static<typeof BuildStatus>;

export const Build = Type.Object({
  id: Type.String(),
  status: BuildStatus,
  name: Type.Optional(Type.String()),
  dockerfile: Type.String(),
  snapshotId: Type.Optional(Type.String()),
  imageUri: Type.Optional(Type.String()),
  architecture: Type.String(),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
  createdAt: Type.String({ format: "date-time" }),
  startedAt: Type.Optional(Type.String({ format: "date-time" })),
  finishedAt: Type.Optional(Type.String({ format: "date-time" })),
});
export type Build = Static<typeof Build>;

export const BuildAccepted = Type.Object({ buildId: Type.String(), build: Build });
export type BuildAccepted = Static<typeof BuildAccepted>;

export const BuildParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

/** The `data` of the log stream's events: `log`, then one `done` or `error`. */
export const BuildLogEvent = Type.Union([
  Type.Object({ type: Type.Literal("log"), line: Type.String() }),
  Type.Object({ type: Type.Literal("done"), snapshot: Snapshot }),
  Type.Object({ type: Type.Literal("error"), code: Type.String(), message: Type.String() }),
]);
export type BuildLogEvent = Static<typeof BuildLogEvent>;
