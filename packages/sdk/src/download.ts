// Downloading gigabytes over plain HTTP with bounded, reused memory: the reply
// is read into one buffer given to the socket, where node:http allocates a new
// buffer per read; in a process with a large heap, a gigabyte of short-lived
// buffers costs more in garbage collection than the transfer itself.
import net from "node:net";

/** The reply's status, and its body as slices of the pieces pushed. */
export class ReplyReader {
  status = 0;
  /** Set once the body is whole (by its length, or by its last chunk). */
  done = false;
  private head: Buffer | null = Buffer.alloc(0);
  /** Bytes of the body (or of the current chunk) still to come; -1 until the end of the connection. */
  private left = 0;
  private chunked = false;
  /** Chunked framing: "size" (a size line), "data", "crlf" (after data), "trailer". */
  private state: "size" | "data" | "crlf" | "trailer" = "size";
  private line = "";

  /** The body bytes in `piece`: slices of it, valid as long as it is. */
  push(piece: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let offset = 0;
    if (this.head) {
      this.head = Buffer.concat([this.head, piece]);
      const end = this.head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.head.length > 64 * 1024) throw new Error("the reply's headers do not end");
        return out;
      }
      this.readHead(this.head.toString("latin1", 0, end));
      piece = this.head.subarray(end + 4); // a copy: safe to hold
      this.head = null;
    }
    while (offset < piece.length && !this.done) {
      if (!this.chunked || this.state === "data") {
        const take = this.left < 0 ? piece.length - offset : Math.min(this.left, piece.length - offset);
        out.push(piece.subarray(offset, offset + take));
        offset += take;
        if (this.left > 0) this.left -= take;
        if (this.left === 0) {
          if (this.chunked) this.state = "crlf";
          else this.done = true;
        }
        continue;
      }
      // size lines, the CRLF after a chunk and trailers are short lines
      const newline = piece.indexOf(0x0a, offset);
      const stop = newline < 0 ? piece.length : newline + 1;
      this.line += piece.toString("latin1", offset, stop);
      offset = stop;
      if (newline < 0) {
        if (this.line.length > 4096) throw new Error("a chunk line of the reply does not end");
        continue;
      }
      const line = this.line.replace(/\r?\n$/, "");
      this.line = "";
      if (this.state === "crlf") {
        if (line !== "") throw new Error("a chunk of the reply is longer than its size");
        this.state = "size";
      } else if (this.state === "size") {
        const size = parseInt(line.split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+/.test(line.trim())) throw new Error("a chunk size of the reply is malformed");
        if (size === 0) this.state = "trailer";
        else {
          this.left = size;
          this.state = "data";
        }
      } else if (line === "") this.done = true;
    }
    return out;
  }

  /** Whether the connection may close here: the body is whole, or it runs to the close. */
  get complete(): boolean {
    return this.done || (!this.head && !this.chunked && this.left < 0);
  }

  private readHead(text: string): void {
    const [statusLine, ...lines] = text.split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "");
    if (!status) throw new Error("the reply has no HTTP status line");
    this.status = Number(status[1]);
    const headers = new Map(lines.map((line) => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()] as const;
    }));
    this.chunked = /chunked/i.test(headers.get("transfer-encoding") ?? "");
    const length = headers.get("content-length");
    if (this.chunked) this.left = 0;
    else if (length !== undefined) {
      this.left = Number(length);
      if (!Number.isSafeInteger(this.left) || this.left < 0) throw new Error("the reply's length is malformed");
      if (this.left === 0) this.done = true;
    } else this.left = -1;
  }
}

/**
 * GETs `url` (plain http) with `headers`, handing each piece of the reply's
 * body to `take`; the read buffer is reused once the promise `take` returns
 * settles. Resolves with the status; a body of an error status is returned
 * whole instead of handed over.
 */
export function download(
  url: URL, headers: Record<string, string>, take: (pieces: Buffer[]) => Promise<void>, signal?: AbortSignal,
): Promise<{ status: number; errorBody?: Buffer }> {
  return new Promise((resolve, reject) => {
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    const reply = new ReplyReader();
    const errorParts: Buffer[] = [];
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(error);
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(reply.status >= 300 ? { status: reply.status, errorBody: Buffer.concat(errorParts) } : { status: reply.status });
    };
    const onRead = (length: number): boolean => {
      let pieces: Buffer[];
      try {
        pieces = reply.push(buffer.subarray(0, length));
      } catch (error) {
        fail(error as Error);
        return false;
      }
      if (reply.status >= 300) {
        for (const piece of pieces) errorParts.push(Buffer.from(piece));
        if (reply.done) finish();
        return !reply.done;
      }
      if (!pieces.length) {
        if (reply.done) finish();
        return !reply.done;
      }
      take(pieces).then(() => (reply.done ? finish() : socket.resume()), fail);
      return false;
    };
    const socket = net.connect({ host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80), onread: { buffer, callback: onRead } });
    socket.on("connect", () => {
      const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, "Connection: close", ...Object.entries(headers).map(([key, value]) => `${key}: ${value}`)];
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    });
    socket.on("error", fail);
    socket.on("end", () => (reply.complete ? finish() : fail(new Error("the connection closed before the end of the reply"))));
    socket.on("close", () => fail(new Error("the connection closed before the end of the reply")));
    if (signal?.aborted) fail(signal.reason as Error);
    signal?.addEventListener("abort", () => fail(signal.reason as Error), { once: true });
  });
}
