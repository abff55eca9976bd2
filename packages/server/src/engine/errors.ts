// Maps failures of the engine to Strata errors: one table from the engine's
// refusals to the contract's codes, so a request the engine turns down is a
// 4xx naming why, and only the engine's own faults (and ours) are 500.
import { StrataError, type ErrorCode } from "@strata/contract";
import { DockerApiError } from "./docker-client.js";
import { RegistryFailure } from "./engine.js";

/**
 * Whether the engine's socket failed: a refused or cut connection, or a socket
 * path that does not exist (ENOENT from connect only: a file the host side of
 * a capture could not find is not the engine being down).
 */
function isConnectionError(error: unknown): boolean {
  const { code, syscall } = (error as NodeJS.ErrnoException | undefined) ?? {};
  return code === "ECONNREFUSED" || code === "ECONNRESET" || code === "EPIPE" || (code === "ENOENT" && syscall === "connect");
}

interface Refusal {
  /** The reply statuses the row applies to. */
  status: (status: number) => boolean;
  /** A pattern the engine's message must match; any message when absent. */
  message?: RegExp;
  code: ErrorCode;
}

/** The engine's refusals as contract codes; the first row that matches wins. */
const refusals: Refusal[] = [
  { status: (s) => s === 404, message: /no such image|reference does not exist/i, code: "image_not_found" },
  { status: (s) => s === 404, message: /no such container/i, code: "sandbox_not_found" },
  { status: (s) => s === 409, message: /is not running|is paused|is restarting/i, code: "sandbox_not_running" },
  // Requests the engine finds malformed, and paths it cleaned and redirected (a name holding `../`).
  { status: (s) => s === 400 || (s >= 300 && s < 400), code: "bad_request" },
  // Values the engine passed on and the runtime refused: limits below what a container can start with.
  {
    status: (s) => s === 500,
    message: /memory might be too low|OOM-killed|minimum memory limit|cpu\.(max|cfs_quota)|pids\.max|memory\.(max|limit)|range of cpus/i,
    code: "bad_request",
  },
];

/** The contract code for an engine reply refusing a request, or undefined when it is the engine's own fault. */
export function refusalCode(status: number, message: string): ErrorCode | undefined {
  return refusals.find((row) => row.status(status) && (!row.message || row.message.test(message)))?.code;
}

/**
 * Whether the engine refused a call with one of these HTTP statuses (404: the
 * container or image is gone; 409: it is not in a state for the call). For
 * features that branch on a refusal without knowing the engine's error type.
 */
export function engineRefused(error: unknown, ...statuses: number[]): boolean {
  return error instanceof DockerApiError && statuses.includes(error.status);
}

/** A StrataError for anything the engine threw; StrataErrors pass through. */
export function engineError(error: unknown, doing: string): StrataError {
  if (error instanceof StrataError) return error;
  if (isConnectionError(error)) return new StrataError("engine_unavailable", `the container engine does not answer (${doing})`, { cause: error });
  if (error instanceof RegistryFailure) {
    const code = { unavailable: "registry_unavailable", denied: "registry_denied", not_found: "image_not_found", other: "registry_unavailable" } as const;
    return new StrataError(code[error.reason], `${doing}: ${error.message}`, { cause: error });
  }
  if (error instanceof DockerApiError) {
    const code = refusalCode(error.status, error.message);
    if (code) return new StrataError(code, `${doing}: ${error.message}`, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StrataError("internal", `${doing}: ${message}`, { cause: error });
}
