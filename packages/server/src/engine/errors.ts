// Maps failures of the engine to Strata errors.
import { StrataError } from "@strata/contract";
import { DockerApiError } from "./docker-client.js";
import { RegistryFailure } from "./engine.js";

function isConnectionError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ECONNREFUSED" || code === "ENOENT" || code === "ECONNRESET" || code === "EPIPE";
}

/** A StrataError for anything the engine threw; StrataErrors pass through. */
export function engineError(error: unknown, doing: string): StrataError {
  if (error instanceof StrataError) return error;
  if (isConnectionError(error)) return new StrataError("engine_unavailable", `the container engine does not answer (${doing})`, { cause: error });
  if (error instanceof RegistryFailure) {
    const code = { unavailable: "registry_unavailable", denied: "registry_denied", not_found: "image_not_found", other: "registry_unavailable" } as const;
    return new StrataError(code[error.reason], `${doing}: ${error.message}`, { cause: error });
  }
  if (error instanceof DockerApiError && error.status === 400) {
    return new StrataError("bad_request", `${doing}: ${error.message}`, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StrataError("internal", `${doing}: ${message}`, { cause: error });
}
