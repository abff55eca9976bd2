// The contract between the server, the SDK and the CLI: schemas, routes, errors.
export * from "./errors.js";
export * from "./limits.js";
export { describePattern } from "./patterns.js";
export * from "./sandbox.js";
export * from "./snapshot.js";
export * from "./build.js";
export { ErrorReply, Health } from "./common.js";
export { routes, type RouteSpec, type RouteName, type RawReply } from "./routes.js";
export { openApiDocument, openApiYaml } from "./openapi.js";
export { apiVersion } from "./version.js";
