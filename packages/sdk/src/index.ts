// Strata's TypeScript SDK.
export { Strata, Sandboxes, type ListSandboxesOptions } from "./client.js";
export { Sandbox, SandboxFiles, type ExecOptions, type ExecStreamOptions, type ExecOutcome, type SnapshotOptions, type ForkResult } from "./sandbox.js";
export {
  Snapshot, Snapshots, defaultWaitTimeoutMs, type WaitOptions, type ListSnapshotsOptions, type DeleteSnapshotOptions, type ExportOptions, type ImportOptions, type PushOptions,
} from "./snapshot.js";
export type { ClientOptions, CallOptions } from "./http.js";
export { StrataError, errorCodes, limits, type ErrorCode, type ErrorDetails } from "@strata/contract";
export type {
  CreateSandboxRequest, ExecResult, GcReport, Isolation, Resources, Sandbox as SandboxInfo, SandboxStatus, UploadResult,
  Snapshot as SnapshotInfo, SnapshotKind, SnapshotStatus, VerifyReport, ImportResult, ReindexReport,
} from "@strata/contract";
export { packContext, type BuildOptions } from "./build.js";
export { withRetry, isTransient, type RetryOptions } from "./retry.js";
export type { Build, BuildStatus } from "@strata/contract";
