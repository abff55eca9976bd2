// Request and reply schemas of the sandbox endpoints, defined once: the server
// validates with them, the OpenAPI document is generated from them, and the
// SDK's types are derived from them.
import { Type, type Static } from "@sinclair/typebox";
import { limits } from "./limits.js";

/** No NUL character: a process's arguments, environment and paths are C strings. */
export const noNul = "^[^\\u0000]*$";

/** An argument of a command. */
const Arg = Type.String({ maxLength: limits.argBytes, pattern: noNul });

/** A command: the program, then its arguments. */
const Command = (description: string) =>
  Type.Array(Arg, {
    minItems: 1,
    maxItems: limits.args,
    description: `${description} \`cmd[0]\` at most ${limits.programBytes} bytes (UTF-8), any other item at most ${limits.argBytes}, and all items with \`env\` at most ${limits.processBytes} bytes (each counted with its NUL and an 8-byte pointer, as the kernel does); longer input goes through stdin.`,
  });

/** The name of an environment variable: not empty, no `=` and no NUL (a process could not receive it as that name). */
export const EnvKey = Type.String({ minLength: 1, maxLength: limits.envKeyChars, pattern: "^[^=\\u0000]+$" });

/** Environment variables: name to value; each `KEY=VALUE` at most `limits.argBytes` bytes. */
const Env = (description: string) =>
  Type.Record(Type.String(), Type.String({ maxLength: limits.argBytes, pattern: noNul }), {
    propertyNames: EnvKey,
    maxProperties: limits.envEntries,
    description: `${description} Names are not empty and hold no \`=\` or NUL; each \`NAME=value\` is at most ${limits.argBytes} bytes.`,
  });

/**
 * A label key: letters, digits, `.`, `_`, `/` and `-`, beginning and ending
 * with a letter or digit (Docker's and OCI's reverse-DNS keys fit), so it can
 * be written `key=value` in a filter.
 */
export const LabelKey = Type.String({ minLength: 1, maxLength: limits.labelKeyChars, pattern: "^[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?$" });

/** Free-form labels: keys per `LabelKey`, values any text without NUL. */
export const Labels = Type.Record(Type.String(), Type.String({ maxLength: limits.labelValueChars, pattern: noNul }), {
  propertyNames: LabelKey,
  maxProperties: limits.labels,
  description: `At most ${limits.labels} labels; keys are letters, digits, \`.\`, \`_\`, \`/\` and \`-\`, beginning and ending with a letter or digit (at most ${limits.labelKeyChars}); values at most ${limits.labelValueChars} characters.`,
});

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
    cpus: Type.Optional(Type.Number({ minimum: limits.minCpus, maximum: 1024, description: `CPU cores, fractions allowed; at least ${limits.minCpus} (and at most the engine's CPU count).` })),
    memoryMb: Type.Optional(Type.Integer({ minimum: limits.minMemoryMb, maximum: 1048576, description: `Memory limit in MiB; at least ${limits.minMemoryMb} (${limits.gvisorMinMemoryMb} under gvisor).` })),
    pids: Type.Optional(Type.Integer({ minimum: limits.minPids, maximum: 4194304, description: `Maximum number of processes (threads count), at least ${limits.minPids} (the init, the command, an exec and its killer); runc only: a gvisor sandbox takes none (the runtime's own threads would count against it, and reaching the limit stops the sandbox).` })),
  },
  { additionalProperties: false },
);

/**
 * A name for a sandbox or snapshot: letters, digits, `.`, `_`, `-`, starting
 * with a letter or digit, and not only hex digits and `-` (so a name can never
 * be read as an id, an id's prefix or a digest).
 */
export const Name = Type.String({
  // The length is part of the pattern: a name too long is malformed (400), not a body too large.
  pattern: `^(?![0-9A-Fa-f-]+$)[A-Za-z0-9][A-Za-z0-9._-]{0,${limits.nameChars - 1}}$`,
  description: `Letters, digits, \`.\`, \`_\`, \`-\` (at most ${limits.nameChars}), starting with a letter or digit and holding at least one character that is not a hex digit or \`-\`: a name never looks like an id or digest.`,
});

const namePattern = new RegExp(Name.pattern!, "u");

/** Whether text is a valid name (the rule of `Name`, for fields that are not JSON bodies). */
export function isName(text: string): boolean {
  return namePattern.test(text);
}

/**
 * An image reference as the engine's grammar has it: `[domain[:port]/]path[:tag][@digest]`
 * (lower-case path components), or an image id (`sha256:` and 64 hex digits).
 */
export const ImageRef = (() => {
  const path = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
  const domainPart = "(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])";
  const domain = `${domainPart}(?:\\.${domainPart})*(?::[0-9]+)?`;
  const tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
  const digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
  return `^(?:sha256:[0-9a-f]{64}|(?:${domain}/)?${path}(?:/${path})*(?::${tag})?(?:@${digest})?)$`;
})();

/**
 * A sandbox's safety settings as a snapshot records them: restores, forks,
 * imports and registry restores of the snapshot inherit each one the create
 * request does not set.
 */
export const SandboxSettings = Type.Object(
  {
    isolation: Isolation,
    network: Type.Boolean({ description: "Whether the source had outbound network." }),
    resources: Resources,
  },
  { additionalProperties: false, description: "The source sandbox's isolation, network and resource limits, inherited by restores unless the request sets them." },
);
export type SandboxSettings = Static<typeof SandboxSettings>;

export const CreateSandboxRequest = Type.Object(
  {
    image: Type.Optional(Type.String({ minLength: 1, maxLength: limits.imageRefChars, pattern: ImageRef, description: "Image reference (`[host[:port]/]path[:tag][@digest]`) or image id (`sha256:...`) already present in the engine; never pulled." })),
    snapshotId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "A ready container snapshot (id, name or digest) whose filesystem the sandbox starts from." })),
    memorySnapshotId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "A ready memory snapshot: the sandbox's processes continue from its checkpoint (gVisor)." })),
    imageUri: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: "A container snapshot pushed to a registry, pinned by digest (`host/repo@sha256:...`); pulled when the engine lacks it and recorded as a local snapshot." })),
    directorySnapshots: Type.Optional(Type.Array(
      Type.Object(
        {
          snapshotId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "A ready directory snapshot: id, name or digest." })),
          imageUri: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: "Or a directory snapshot pushed to a registry, pinned by digest (`host/repo@sha256:...`)." })),
          path: Type.Optional(Type.String({ pattern: "^/[^\\u0000]+$", maxLength: limits.pathChars, description: "Where to restore it (default: the path it was captured from); absolute, not `/`." })),
        },
        { additionalProperties: false },
      ),
      { maxItems: 256, description: "Directory snapshots put in place before the command starts; nested paths are applied parent first." },
    )),
    name: Type.Optional(Name),
    cmd: Type.Optional(Command("Replaces the image's command.")),
    env: Type.Optional(Env("Environment variables added to the image's.")),
    labels: Type.Optional(Labels),
    isolation: Type.Optional(Type.Union([Type.Literal("runc"), Type.Literal("gvisor")], { description: "runc or gvisor. Default: what the snapshot recorded of its source, else runc; never below the server's minimum (a weaker one named here is a 403 isolation_below_minimum)." })),
    resources: Type.Optional(Resources),
    network: Type.Optional(Type.Boolean({ description: "Outbound network. Default: what the snapshot recorded of its source, else true. false: loopback only." })),
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
    cmd: Command("The program and its arguments, run as given (no shell)."),
    cwd: Type.Optional(Type.String({ pattern: "^/[^\\u0000]*$", maxLength: limits.pathChars })),
    env: Type.Optional(Env("Environment added for this command.")),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400000, description: "The command is killed after this long; the reply says timedOut." })),
    stdin: Type.Optional(Type.String({ description: `Written to the command's standard input, then closed. The way to pass long input, e.g. a script: \`{"cmd": ["sh"], "stdin": "..."}\` (bounded only by the ${limits.jsonBodyBytes / 1024 / 1024} MiB request body).` })),
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

const SandboxPath = Type.String({
  maxLength: limits.pathChars,
  description: "Absolute path inside the sandbox, resolved as the sandbox resolves it (links followed inside the sandbox). " +
    "A path that is not absolute, holds NUL, climbs above / with '..' or is not valid UTF-8 is a 400 `path_invalid`.",
});

export const FilesQuery = Type.Object({ path: SandboxPath }, { additionalProperties: false });

export const WriteFilesQuery = Type.Object(
  {
    path: SandboxPath,
    owner: Type.Optional(Type.String({
      maxLength: 256,
      pattern: "^[^:]+(:[^:]+)?$",
      description: "Owner of what the upload creates (and of an overwritten file): `user[:group]`, names or numbers, looked up in " +
        "the sandbox's /etc/passwd and /etc/group. Default: the sandbox's user (the image's USER, root when unset) for new files " +
        "and directories; an overwritten file keeps its owner.",
    })),
    mode: Type.Optional(Type.String({
      pattern: "^0?[0-7]{3,4}$",
      description: "Octal permissions of the uploaded file (octet-stream uploads only). Default: 0644 for a new file; an overwritten file keeps its mode.",
    })),
  },
  { additionalProperties: false },
);
export type WriteFilesQuery = Static<typeof WriteFilesQuery>;

export const UploadResult = Type.Object({ path: Type.String(), bytes: Type.Integer() });
export type UploadResult = Static<typeof UploadResult>;

export const ForkReply = Type.Object({
  snapshotId: Type.String({ description: "The memory snapshot the forks continue from. It is kept: more sandboxes can start from it, and it is deleted like any snapshot (`DELETE /v1/snapshots/{id}`, with `force` while forks exist)." }),
  sandboxes: Type.Array(Sandbox),
});
export type ForkReply = Static<typeof ForkReply>;
