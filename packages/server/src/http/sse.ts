// Server-Sent Events on a reply the route has taken over: the headers, one
// frame per event, a comment line while idle so proxies keep the connection.
// The one place SSE framing is written.
import type { ServerResponse } from "node:http";

/** An open event stream; see `eventStream`. */
export interface EventStream {
  /**
   * Writes one event: its `id` (what a client resumes from with
   * Last-Event-ID), its `name` (the SSE `event` field) and `data`, written as
   * JSON on one line (JSON never holds a raw newline).
   */
  send(id: number, name: string, data: unknown): void;
  /** Ends the stream; later sends are dropped. */
  end(): void;
  /** Called once when the stream ends, by `end` or by the client leaving. */
  onClose(listener: () => void): void;
  /** Whether the stream has ended. */
  readonly ended: boolean;
}

/** Starts an event stream on `res` (status 200), with a ping comment every `pingMs` milliseconds while open. */
export function eventStream(res: ServerResponse, pingMs = 15_000): EventStream {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
  const ping = setInterval(() => res.write(": ping\n\n"), pingMs);
  res.on("close", () => clearInterval(ping));
  return {
    send(id, name, data) {
      if (!res.writableEnded) res.write(`id: ${id}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    end() {
      clearInterval(ping);
      if (!res.writableEnded) res.end();
    },
    onClose(listener) {
      res.on("close", listener);
    },
    get ended() {
      return res.writableEnded || res.destroyed;
    },
  };
}
