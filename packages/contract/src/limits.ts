// Limits on what a request may hold, set by what the engine and the kernel
// really accept. The schemas take their bounds from here, so the server, the
// OpenAPI document, the SDK and the README all show the same numbers; what a
// schema can't say (sizes in bytes rather than characters, sums over fields)
// is checked by `processInputProblem`, which the server runs before the engine
// sees the request.

/** The bounds of every request field that reaches the engine or the kernel. */
export const limits = {
  /**
   * One argument, or one `KEY=VALUE` environment entry, in UTF-8 bytes: the
   * kernel's MAX_ARG_STRLEN (131072) less the terminating NUL. Longer ones
   * fail `execve` with E2BIG.
   */
  argBytes: 131071,
  /**
   * The program, `cmd[0]`, in UTF-8 bytes: PATH_MAX (4096) less the NUL. A
   * longer one cannot name a file, and the runtime's error quoting it (over
   * 64 KiB) fills the pipe the runtime reports through and hangs the sandbox.
   */
  programBytes: 4095,
  /**
   * Arguments and environment entries of one process together, counted as
   * the kernel counts them (bytes + NUL + an 8-byte pointer each): half of
   * ARG_MAX (2 MiB), leaving the other half to the image's own environment.
   */
  processBytes: 1024 * 1024,
  /** Items in a `cmd`. */
  args: 65536,
  /** Entries in an `env` map. */
  envEntries: 4096,
  /** Characters of an environment variable's name. */
  envKeyChars: 256,
  /** Entries in a `labels` map. */
  labels: 256,
  /** Characters of a label key. */
  labelKeyChars: 256,
  /** Characters of a label value. */
  labelValueChars: 4096,
  /** Entries in a build's `buildArgs`. */
  buildArgs: 1024,
  /** Characters of a build argument's value. */
  buildArgValueChars: 32768,
  /**
   * Bytes of all build arguments as the engine receives them (URL-encoded
   * JSON in the request line, which the engine caps at 1 MiB with the headers).
   */
  buildArgsEncodedBytes: 512 * 1024,
  /** Characters of a sandbox or snapshot name. */
  nameChars: 128,
  /** Characters of an absolute path inside a sandbox (PATH_MAX less the NUL). */
  pathChars: 4095,
  /** Characters of an image reference. */
  imageRefChars: 512,
  /** Smallest CPU share the runtime can enforce: a 1 ms quota per 100 ms period. */
  minCpus: 0.01,
  /** Smallest memory limit the engine accepts, in MiB. */
  minMemoryMb: 6,
  /** Smallest memory limit a gVisor sandbox starts with, in MiB (its kernel lives in the same limit). */
  gvisorMinMemoryMb: 16,
  /**
   * Smallest process limit (runc): the init, the command, an exec and the
   * exec's killer. gVisor sandboxes take no process limit: the runtime's own
   * threads count against it, and reaching it stops the whole sandbox.
   */
  minPids: 4,
  /** Bytes of a JSON request body (exec `stdin` travels in it). */
  jsonBodyBytes: 64 * 1024 * 1024,
  /** Hours an `Idempotency-Key` and its reply are kept. */
  idempotencyHours: 24,
} as const;

/** A field of a request that is over a limit: where (`body/cmd/2`) and why. */
export interface LimitProblem {
  field: string;
  message: string;
}

const pointerBytes = 8;

function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).length;
}

/**
 * The first field of a process's command and environment that the kernel or
 * the runtime would refuse or choke on, or undefined when all fit. `where` is
 * the path of the request part that holds them, e.g. `body`.
 */
export function processInputProblem(
  input: { cmd?: readonly string[] | undefined; env?: Readonly<Record<string, string>> | undefined },
  where: string,
): LimitProblem | undefined {
  let total = 0;
  const cmd = input.cmd ?? [];
  for (const [i, arg] of cmd.entries()) {
    const bytes = utf8Bytes(arg);
    const max = i === 0 ? limits.programBytes : limits.argBytes;
    if (bytes > max) {
      const what = i === 0 ? "the program" : "one argument";
      return {
        field: `${where}/cmd/${i}`,
        message: `${where}/cmd/${i} is ${bytes} bytes; ${what} may be at most ${max} bytes (send long scripts as stdin)`,
      };
    }
    total += bytes + 1 + pointerBytes;
  }
  for (const [key, value] of Object.entries(input.env ?? {})) {
    const bytes = utf8Bytes(key) + 1 + utf8Bytes(value);
    if (bytes > limits.argBytes) {
      return { field: `${where}/env/${key}`, message: `${where}/env/${key} is ${bytes} bytes as KEY=VALUE; an entry may be at most ${limits.argBytes} bytes` };
    }
    total += bytes + 1 + pointerBytes;
  }
  if (total > limits.processBytes) {
    return {
      field: `${where}/cmd`,
      message: `${where}/cmd and ${where}/env take ${total} bytes together; a process may get at most ${limits.processBytes} (send long input as stdin)`,
    };
  }
  return undefined;
}

/**
 * The first resource limit a sandbox of this isolation could not start with,
 * or undefined. The schema holds the engine's own minimums; this adds those of
 * gVisor, whose user-space kernel runs inside the sandbox's limits.
 */
export function resourceProblem(
  resources: { cpus?: number | undefined; memoryMb?: number | undefined; pids?: number | undefined },
  isolation: "runc" | "gvisor",
  where: string,
): LimitProblem | undefined {
  if (isolation !== "gvisor") return undefined;
  if (resources.memoryMb !== undefined && resources.memoryMb < limits.gvisorMinMemoryMb) {
    return { field: `${where}/memoryMb`, message: `${where}/memoryMb must be at least ${limits.gvisorMinMemoryMb} for a gvisor sandbox` };
  }
  if (resources.pids !== undefined) {
    return {
      field: `${where}/pids`,
      message: `${where}/pids is not supported for a gvisor sandbox: the runtime's own threads count against the limit, and reaching it stops the whole sandbox (leave it unset)`,
    };
  }
  return undefined;
}
