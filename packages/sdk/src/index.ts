// Strata's TypeScript SDK.
export { Strata, Sandboxes, type ListSandboxesOptions } from "./client.js";
export { Sandbox, SandboxFiles, type ExecOptions, type ExecStreamOptions, type ExecOutcome } from "./sandbox.js";
export type { ClientOptions, CallOptions } from "./http.js";
export { StrataError, errorCodes, type ErrorCode } from "@strata/contract";
export type {
  CreateSandboxRequest, ExecResult, Isolation, Resources, Sandbox as SandboxInfo, SandboxStatus, UploadResult,
} from "@strata/contract";
