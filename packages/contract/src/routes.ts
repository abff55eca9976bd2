// Every endpoint of the API with its schemas. The server registers exactly
// these routes and validates with these schemas; the OpenAPI document is
// generated from this table.
import type { TSchema } from "@sinclair/typebox";
import { ErrorReply, Health } from "./common.js";
import { Build, BuildAccepted, BuildParams } from "./build.js";
import {
  CreateSandboxRequest,
  ExecRequest,
  ExecResult,
  FilesQuery,
  ListSandboxesQuery,
  Sandbox,
  SandboxList,
  SandboxParams,
  StopSandboxQuery,
  UploadResult,
  WriteFilesQuery,
  ForkReply,
} from "./sandbox.js";
import {
  CreateSnapshotRequest, DeleteSnapshotQuery, GcReport, GetSnapshotQuery, ListSnapshotsQuery, Snapshot, SnapshotList, SnapshotParams,
  VerifyReport, ExportQuery, ImportResult, ReindexReport, PushRequest, ForkRequest,
} from "./snapshot.js";

/** A reply that is not JSON: a byte stream of one of these media types. */
export interface RawReply {
  raw: string[];
  description: string;
}

export interface RouteSpec {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path with `:param` placeholders. */
  url: string;
  operationId: string;
  summary: string;
  tag: string;
  params?: TSchema;
  query?: TSchema;
  body?: TSchema;
  /** A raw (non-JSON) request body of these media types. */
  rawBody?: string[];
  /** Reply per status; errors are added for every route. */
  replies: Record<number, TSchema | RawReply | null>;
  /** Error codes this route documents beyond the common ones. */
  errors?: string[];
}

export const routes = {
  health: {
    method: "GET", url: "/v1/health", operationId: "health", tag: "server",
    summary: "Whether the server and its engine answer.",
    replies: { 200: Health },
  },
  createSandbox: {
    method: "POST", url: "/v1/sandboxes", operationId: "createSandbox", tag: "sandboxes",
    summary: "Create and start a sandbox from an image.",
    body: CreateSandboxRequest,
    replies: { 201: Sandbox },
  },
  listSandboxes: {
    method: "GET", url: "/v1/sandboxes", operationId: "listSandboxes", tag: "sandboxes",
    summary: "List sandboxes, newest first, filtered by status and labels.",
    query: ListSandboxesQuery,
    replies: { 200: SandboxList },
  },
  getSandbox: {
    method: "GET", url: "/v1/sandboxes/:id", operationId: "getSandbox", tag: "sandboxes",
    summary: "Get a sandbox by id or name.",
    params: SandboxParams,
    replies: { 200: Sandbox },
  },
  deleteSandbox: {
    method: "DELETE", url: "/v1/sandboxes/:id", operationId: "deleteSandbox", tag: "sandboxes",
    summary: "Stop and remove a sandbox and its container.",
    params: SandboxParams,
    replies: { 204: null },
  },
  stopSandbox: {
    method: "POST", url: "/v1/sandboxes/:id/stop", operationId: "stopSandbox", tag: "sandboxes",
    summary: "Stop a sandbox; its filesystem is kept.",
    params: SandboxParams,
    query: StopSandboxQuery,
    replies: { 200: Sandbox },
  },
  startSandbox: {
    method: "POST", url: "/v1/sandboxes/:id/start", operationId: "startSandbox", tag: "sandboxes",
    summary: "Start a stopped sandbox.",
    params: SandboxParams,
    replies: { 200: Sandbox },
  },
  exec: {
    method: "POST", url: "/v1/sandboxes/:id/exec", operationId: "exec", tag: "sandboxes",
    summary: "Run a command and wait for it; the reply holds its exit code and output.",
    params: SandboxParams,
    body: ExecRequest,
    replies: { 200: ExecResult },
  },
  execStream: {
    method: "POST", url: "/v1/sandboxes/:id/exec/stream", operationId: "execStream", tag: "sandboxes",
    summary: "Run a command and stream its output as it comes, one JSON event per line (ExecEvent), ending with an `exit` event.",
    params: SandboxParams,
    body: ExecRequest,
    replies: { 200: { raw: ["application/x-ndjson"], description: "ExecEvent lines" } },
  },
  readFile: {
    method: "GET", url: "/v1/sandboxes/:id/files", operationId: "readFile", tag: "files",
    summary: "Download a file's bytes, or a tar of a directory.",
    params: SandboxParams,
    query: FilesQuery,
    replies: {
      200: { raw: ["application/octet-stream", "application/x-tar"], description: "The file's bytes, or a tar of the directory" },
    },
  },
  writeFile: {
    method: "PUT", url: "/v1/sandboxes/:id/files", operationId: "writeFile", tag: "files",
    summary: "Upload a file (octet-stream body) or extract a tar (x-tar body) into the directory at path.",
    params: SandboxParams,
    query: WriteFilesQuery,
    rawBody: ["application/octet-stream", "application/x-tar"],
    replies: { 200: UploadResult },
  },
  createSnapshot: {
    method: "POST", url: "/v1/sandboxes/:id/snapshots", operationId: "createSnapshot", tag: "snapshots",
    summary: "Start capturing a snapshot of a sandbox (running, paused or stopped); it turns ready or failed in the background. Honours Idempotency-Key.",
    params: SandboxParams,
    body: CreateSnapshotRequest,
    replies: { 202: Snapshot },
  },
  forkSandbox: {
    method: "POST", url: "/v1/sandboxes/:id/fork", operationId: "forkSandbox", tag: "sandboxes",
    summary: "Take a memory snapshot of a running gVisor sandbox and start count sandboxes from it, each continuing its processes; the source keeps running.",
    params: SandboxParams,
    body: ForkRequest,
    replies: { 201: ForkReply },
  },
  listSnapshots: {
    method: "GET", url: "/v1/snapshots", operationId: "listSnapshots", tag: "snapshots",
    summary: "List snapshots, newest first, filtered and paginated.",
    query: ListSnapshotsQuery,
    replies: { 200: SnapshotList },
  },
  getSnapshot: {
    method: "GET", url: "/v1/snapshots/:id", operationId: "getSnapshot", tag: "snapshots",
    summary: "Get a snapshot by id, name or digest; optionally wait while it is creating.",
    params: SnapshotParams,
    query: GetSnapshotQuery,
    replies: { 200: Snapshot },
  },
  deleteSnapshot: {
    method: "DELETE", url: "/v1/snapshots/:id", operationId: "deleteSnapshot", tag: "snapshots",
    summary: "Delete a snapshot and, when nothing else uses it, its engine image. Refused with children or while creating unless force.",
    params: SnapshotParams,
    query: DeleteSnapshotQuery,
    replies: { 204: null },
  },
  verifySnapshot: {
    method: "POST", url: "/v1/snapshots/:id/verify", operationId: "verifySnapshot", tag: "snapshots",
    summary: "Recompute and report, part by part, the manifest digest, the image and each blob.",
    params: SnapshotParams,
    replies: { 200: VerifyReport },
  },
  exportSnapshot: {
    method: "GET", url: "/v1/snapshots/:id/export", operationId: "exportSnapshot", tag: "snapshots",
    summary: "Stream an archive of the snapshot (see docs/archive-format.md): .tar.zst by default.",
    params: SnapshotParams,
    query: ExportQuery,
    replies: { 200: { raw: ["application/zstd", "application/x-tar"], description: "The archive" } },
  },
  importSnapshot: {
    method: "POST", url: "/v1/snapshots/import", operationId: "importSnapshot", tag: "snapshots",
    summary: "Import an archive (compressed or not), validated as it streams; idempotent for snapshots already present.",
    rawBody: ["application/zstd", "application/x-tar", "application/octet-stream"],
    replies: { 201: ImportResult },
  },
  pushSnapshot: {
    method: "POST", url: "/v1/snapshots/:id/push", operationId: "pushSnapshot", tag: "snapshots",
    summary: "Push the snapshot to the server's registry and pin imageUri by digest. With Accept: application/x-ndjson, progress events stream, ending with done or error.",
    params: SnapshotParams,
    body: PushRequest,
    replies: { 200: Snapshot },
  },
  reindexSnapshots: {
    method: "POST", url: "/v1/snapshots/reindex", operationId: "reindexSnapshots", tag: "snapshots",
    summary: "Rebuild the index from the manifests on disk, skipping and reporting malformed ones.",
    replies: { 200: ReindexReport },
  },
  createBuild: {
    method: "POST", url: "/v1/builds", operationId: "createBuild", tag: "builds",
    summary: "Queue a build (multipart: context as tar or tar.gz, dockerfile?, buildArgs? as JSON, name?, labels? as JSON, replace?); it ends as a ready container snapshot.",
    rawBody: ["multipart/form-data"],
    replies: { 202: BuildAccepted },
  },
  getBuild: {
    method: "GET", url: "/v1/builds/:id", operationId: "getBuild", tag: "builds",
    summary: "A build's state.",
    params: BuildParams,
    replies: { 200: Build },
  },
  cancelBuild: {
    method: "DELETE", url: "/v1/builds/:id", operationId: "cancelBuild", tag: "builds",
    summary: "Cancel a build: it stops, nothing it made is left, its log ends with an error event (code cancelled).",
    params: BuildParams,
    replies: { 200: Build },
  },
  buildLogs: {
    method: "GET", url: "/v1/builds/:id/logs", operationId: "buildLogs", tag: "builds",
    summary: "Server-Sent Events: `log` events (one per line, with ids), then one `done` (the snapshot) or `error`. The whole log is kept; Last-Event-ID resumes after that event.",
    params: BuildParams,
    replies: { 200: { raw: ["text/event-stream"], description: "BuildLogEvent data in SSE events" } },
  },
  gc: {
    method: "POST", url: "/v1/gc", operationId: "gc", tag: "server",
    summary: "Remove engine images, blobs and temp files that no record owns; report what was freed.",
    replies: { 200: GcReport },
  },
} satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof routes;

export { ErrorReply };
