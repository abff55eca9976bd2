// The one error type of Strata: a closed list of codes, each with the HTTP
// status it travels with. Server, SDK and CLI all share this file.

/** HTTP status for every error code. The only place a status is chosen. */
export const errorStatus = {
  bad_request: 400,
  url_invalid: 400,
  unauthorized: 401,
  registry_denied: 403,
  route_not_found: 404,
  sandbox_not_found: 404,
  image_not_found: 404,
  path_not_found: 404,
  path_invalid: 400,
  path_symlink_loop: 422,
  path_runtime_managed: 422,
  path_changed: 409,
  files_not_visible: 409,
  snapshot_not_found: 404,
  sandbox_name_taken: 409,
  sandbox_not_running: 409,
  snapshot_name_taken: 409,
  snapshot_not_ready: 409,
  snapshot_has_children: 409,
  snapshot_creating: 409,
  idempotency_conflict: 409,
  blob_corrupt: 409,
  snapshot_exists: 409,
  archive_invalid: 400,
  archive_unsafe_path: 400,
  special_file_unsupported: 422,
  path_too_long: 422,
  archive_digest_mismatch: 400,
  archive_truncated: 400,
  registry_not_configured: 409,
  build_not_found: 404,
  context_invalid: 400,
  dockerfile_not_found: 400,
  context_too_large: 413,
  build_failed: 422,
  cancelled: 409,
  interrupted: 503,
  memory_snapshot_requires_gvisor: 409,
  request_timeout: 408,
  sandbox_busy: 409,
  checkpoint_restore_failed: 409,
  isolation_below_minimum: 403,
  payload_too_large: 413,
  field_too_large: 413,
  uri_too_long: 414,
  snapshot_too_large: 413,
  unsupported_media_type: 415,
  headers_too_large: 431,
  registry_unavailable: 502,
  engine_unavailable: 503,
  insufficient_storage: 507,
  internal: 500,
} as const;

/** Every code a Strata error can carry. */
export type ErrorCode = keyof typeof errorStatus;

export const errorCodes = Object.keys(errorStatus) as ErrorCode[];

/** More about an error, when it concerns one field: `field` is its path, e.g. `body/cmd/2` or `body/env/PATH`. */
export interface ErrorDetails {
  field?: string;
}

/** The body of every error reply: `{"error": {"code", "message", "details"?}}`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: ErrorDetails };
}

/** A failure with a machine-readable code; thrown by the server, rebuilt by the SDK. */
export class StrataError extends Error {
  override readonly name = "StrataError";
  readonly code: ErrorCode;
  /** HTTP status derived from the code. */
  readonly status: number;
  /** The field the error is about, when there is one. */
  readonly details?: ErrorDetails;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: ErrorDetails }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = code;
    this.status = errorStatus[code];
    if (options?.details) this.details = options.details;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }

  /** Rebuilds an error from a reply body; unknown codes become `internal`. */
  static fromBody(body: unknown, status: number): StrataError {
    const error = (body as Partial<ErrorBody> | undefined)?.error;
    if (error && typeof error.code === "string" && typeof error.message === "string") {
      const code = isErrorCode(error.code) ? error.code : "internal";
      const details = error.details && typeof error.details === "object" ? { details: error.details } : {};
      return new StrataError(code, error.message, details);
    }
    return new StrataError(status === 401 ? "unauthorized" : "internal", `HTTP ${status}`);
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(errorStatus, value);
}
