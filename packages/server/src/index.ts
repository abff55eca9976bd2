// The Strata server as a library: start it from a config.
export { startServer, type StrataServer } from "./app.js";
export { resolveConfig, registryOptionsFromEnv, defaultPort, parseIsolation, type ServerConfig } from "./config.js";
export { isLoopbackAddress, resolvesToLoopback } from "./loopback.js";
export { parseRegistry, type RegistryConfig } from "./registry/config.js";
