import { type ServerConfig, type StrataServer } from "@strata/server";
import { Strata } from "@strata/sdk";
/** The offline base image the setup script builds. */
export declare const baseImage = "strata-test/busybox:latest";
export interface TestServer {
    server: StrataServer;
    strata: Strata;
    home: string;
    logs: Record<string, unknown>[];
    /** Containers on the engine that belong to this server. */
    containers(): Promise<number>;
    /** Stops the server, keeping its home and containers (for restart stories). */
    stop(): Promise<void>;
    /** Starts a server again on the same home. */
    restart(options?: Partial<ServerConfig>): Promise<TestServer>;
    /** Removes every sandbox, stops the server and deletes the home. */
    close(): Promise<void>;
}
export declare function startTestServer(options?: Partial<ServerConfig>, home?: string): Promise<TestServer>;
/** Waits until check() is true, polling; fails after timeoutMs. */
export declare function eventually(check: () => Promise<boolean>, timeoutMs?: number, what?: string): Promise<void>;
/** The StrataError code a promise rejects with. */
export declare function errorCode(promise: Promise<unknown>): Promise<string>;
