export interface TestRegistry {
    /** `127.0.0.1:PORT` */
    host: string;
    stop(): Promise<void>;
    start(): Promise<void>;
    close(): Promise<void>;
}
export declare function startRegistry(): Promise<TestRegistry>;
