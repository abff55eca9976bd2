// The named schemas of the contract: each becomes a component of the OpenAPI
// document, referenced wherever it is used.
export { ErrorReply, Health } from "./common.js";
export {
  CreateSandboxRequest,
  ExecEvent,
  ExecRequest,
  ExecResult,
  Isolation,
  Resources,
  Sandbox,
  SandboxList,
  SandboxSettings,
  SandboxStatus,
  UploadResult,
  ForkReply,
  Labels,
} from "./sandbox.js";
export { BaseImage, CreateSnapshotRequest, GcReport, Snapshot, SnapshotError, SnapshotKind, SnapshotList, SnapshotStatus, VerifyPart, VerifyReport, ImportResult, ReindexReport, PushEvent } from "./snapshot.js";
export { Build, BuildAccepted, BuildArgs, BuildLogEvent, BuildStatus } from "./build.js";
