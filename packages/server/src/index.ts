// The Strata server as a library: start it from a config.
export { startServer, type StrataServer } from "./app.js";
export { resolveConfig, defaultPort, parseIsolation, type ServerConfig } from "./config.js";
export { parseRegistry, type RegistryConfig } from "./registry/config.js";
