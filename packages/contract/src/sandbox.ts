// Request and reply schemas of the sandbox endpoints, defined once: the server
// validates with them, the OpenAPI document is generated from them, and the
// SDK's types are derived from them.
import { Type, type Static } from "@sinclair/typebox";

const StringMap = (description: string) =>
  Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 4096 }), { description });

export const Isolation = Type.Union([Type.Literal("runc"), Type.Literal("gvisor")], {
  description: "runc: plain Linux containers; gvisor: the runsc user-space kernel.",
});

export const SandboxStatus = Type.Union(
  [
    Type.Literal("creating"),
    Type.Literal("running"),
    Type.Literal("paused"),
    Type.Literal("stopped"),
    Type.Literal("failed"),
  ],
  { description: "Live state, read from the engine." },
);

export const Resources = Type.Object(
  {
    cpus: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1024, description: "CPU cores, fractions allowed." })),
    memoryMb: Type.Optional(Type.Integer({ minimum: 6, maximum: 1048576, description: "Memory limit in MiB." })),
    pids: Type.Optional(Type.Integer({ minimum: 1, maximum: 4194304, description: "Maximum number of processes." })),
  },
  { additionalProperties: false },
);

/** A bare identifier: letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export const Name = Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", maxLength: 128 });

export const CreateSandboxRequest = Type.Object(
  {
    image: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: "Image reference already present in the engine; never pulled." })),
    snapshotId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "A ready container snapshot (id, name or digest) whose filesystem the sandbox starts from." })),
    memorySnapshotId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "A ready memory snapshot: the sandbox's processes continue from its checkpoint (gVisor)." })),
    imageUri: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: "A container snapshot pushed to a registry, pinned by digest (`host/repo@sha256:...`); pulled when the engine lacks it and recorded as a local snapshot." })),
    directorySnapshots: Type.Optional(Type.Array(
      Type.Object(
        {
          snapshotId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "A ready directory snapshot: id, name or digest." })),
          imageUri: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: "Or a directory snapshot pushed to a registry, pinned by digest (`host/repo@sha256:...`)." })),
          path: Type.Optional(Type.String({ pattern: "^/.", maxLength: 4096, description: "Where to restore it (default: the path it was captured from); absolute, not `/`." })),
        },
        { additionalProperties: false },
      ),
      { maxItems: 256, description: "Directory snapshots put in place before the command starts; nested paths are applied parent first." },
    )),
    name: Type.Optional(Name),
    cmd: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: "Replaces the image's command." })),
    env: Type.Optional(StringMap("Environment variables added to the image's.")),
    labels: Type.Optional(StringMap("Free-form labels, filterable in list.")),
    isolation: Type.Optional(Isolation),
    resources: Type.Optional(Resources),
    network: Type.Optional(Type.Boolean({ description: "Outbound network (default true). false: loopback only." })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 31536000, description: "After this many seconds the sandbox is stopped and removed." })),
  },
  { additionalProperties: false },
);
export type CreateSandboxRequest = Static<typeof CreateSandboxRequest>;

export const Sandbox = Type.Object({
  id: Type.String(),
  name: Type.Optional(Type.String()),
  status: SandboxStatus,
  image: Type.String({ description: "The image reference the sandbox was created from (for a snapshot, its image)." }),
  imageId: Type.String({ description: "The engine's id of that image." }),
  snapshotId: Type.Optional(Type.String()),
  directorySnapshots: Type.Optional(Type.Array(Type.Object({ snapshotId: Type.String(), path: Type.String() }))),
  isolation: Isolation,
  cmd: Type.Optional(Type.Array(Type.String())),
  labels: Type.Record(Type.String(), Type.String()),
  resources: Resources,
  network: Type.Boolean(),
  exitCode: Type.Optional(Type.Integer({ description: "Exit code of the main process once it has stopped." })),
  createdAt: Type.String({ format: "date-time" }),
  expiresAt: Type.Optional(Type.String({ format: "date-time" })),
});
export type Sandbox = Static<typeof Sandbox>;
export type SandboxStatus = Static<typeof SandboxStatus>;
export type Isolation = Static<typeof Isolation>;
export type Resources = Static<typeof Resources>;

export const SandboxList = Type.Object({ sandboxes: Type.Array(Sandbox) });
export type SandboxList = Static<typeof SandboxList>;

export const ListSandboxesQuery = Type.Object(
  {
    status: Type.Optional(SandboxStatus),
    label: Type.Optional(Type.Array(Type.String({ pattern: "^[^=]+=.*$" }), { description: "`key=value`; repeat to require several." })),
  },
  { additionalProperties: false },
);
export type ListSandboxesQuery = Static<typeof ListSandboxesQuery>;

export const SandboxParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

export const StopSandboxQuery = Type.Object(
  { timeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600, description: "Grace period before SIGKILL (default 10)." })) },
  { additionalProperties: false },
);

/** How output bytes are put into the reply's strings. */
export const ExecEncoding = Type.Union([Type.Literal("utf8"), Type.Literal("base64")], {
  description:
    "utf8 (default): output decoded as UTF-8, each invalid byte sequence replaced by U+FFFD (lossy for binary output). " +
    "base64: stdout and stderr (and each streamed event's data) are the exact bytes, base64-encoded.",
});
export type ExecEncoding = Static<typeof ExecEncoding>;

export const ExecRequest = Type.Object(
  {
    cmd: Type.Array(Type.String(), { minItems: 1 }),
    cwd: Type.Optional(Type.String({ pattern: "^/" })),
    env: Type.Optional(StringMap("Environment added for this command.")),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400000, description: "The command is killed after this long; the reply says timedOut." })),
    stdin: Type.Optional(Type.String({ description: "Written to the command's standard input, then closed." })),
    encoding: Type.Optional(ExecEncoding),
  },
  { additionalProperties: false },
);
export type ExecRequest = Static<typeof ExecRequest>;

const exitCode = Type.Integer({
  description: "The command's exit code; 137 when it was killed (timeout, sandbox stopped); -1 when it could not be known.",
});
const timedOut = Type.Boolean({ description: "timeoutMs passed before the command ended; it was killed with everything it started." });
const killed = Type.Boolean({
  description:
    "The exec ended before the command ended by itself: the timeout (or the client leaving) killed it, or the sandbox stopped " +
    "(exitCode 137) or was checkpointed by a memory snapshot (exitCode -1: its processes are in the checkpoint) under it. Output may be cut short.",
});

export const ExecResult = Type.Object({
  exitCode,
  stdout: Type.String({ description: "Standard output in the request's encoding, cut at the server's limit (16 MiB by default)." }),
  stderr: Type.String({ description: "Standard error in the request's encoding, cut at the server's limit (16 MiB by default)." }),
  timedOut,
  killed,
  truncated: Type.Boolean({ description: "stdout or stderr was cut at the server's limit; the streaming form has none." }),
  durationMs: Type.Number(),
});
export type ExecResult = Static<typeof ExecResult>;

/** One line of the streaming exec reply (`application/x-ndjson`). */
export const ExecEvent = Type.Union([
  Type.Object({ type: Type.Literal("stdout"), data: Type.String() }),
  Type.Object({ type: Type.Literal("stderr"), data: Type.String() }),
  Type.Object({ type: Type.Literal("exit"), exitCode, timedOut, killed, durationMs: Type.Number() }),
  Type.Object({ type: Type.Literal("error"), code: Type.String(), message: Type.String() }),
]);
export type ExecEvent = Static<typeof ExecEvent>;

export const FilesQuery = Type.Object(
  { path: Type.String({ pattern: "^/", maxLength: 4096, description: "Absolute path inside the sandbox." }) },
  { additionalProperties: false },
);

export const UploadResult = Type.Object({ path: Type.String(), bytes: Type.Integer() });
export type UploadResult = Static<typeof UploadResult>;

export const ForkReply = Type.Object({
  snapshotId: Type.String({ description: "The memory snapshot the forks continue from." }),
  sandboxes: Type.Array(Sandbox),
});
export type ForkReply = Static<typeof ForkReply>;
