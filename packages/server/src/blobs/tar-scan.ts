// Reads the entries of a tar stream as it passes, headers only: no copy and
// no parse of file content. Extension headers (pax, GNU long names) are
// applied to the entry they precede, so names of any length come out whole.
const block = 512;
/** Extension headers larger than this are refused: real ones hold a few names. */
const maxExtension = 1024 * 1024;

export interface TarEntry {
  /** The tar type flag: "0" file, "1" hard link, "2" symlink, "5" directory... */
  type: string;
  name: string;
  linkname: string;
  size: number;
}

function parseSize(header: Buffer): number {
  const field = header.subarray(124, 136);
  if (field[0]! & 0x80) {
    // base-256 for sizes past 8 GiB
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = field.toString("ascii").replace(/\0.*$/, "").trim();
  return text ? parseInt(text, 8) : 0;
}

const text = (field: Buffer) => field.toString("utf8").replace(/\0.*$/s, "");

/** The `path` and `linkpath` records of a pax extended header. */
function parsePax(body: Buffer): { name?: string; linkname?: string } {
  const out: { name?: string; linkname?: string } = {};
  let offset = 0;
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset);
    const length = parseInt(body.toString("ascii", offset, space), 10);
    if (space < 0 || !(length > 0)) throw new Error("malformed pax header");
    const record = body.toString("utf8", space + 1, offset + length - 1);
    const equals = record.indexOf("=");
    const key = record.slice(0, equals);
    if (key === "path") out.name = record.slice(equals + 1);
    else if (key === "linkpath") out.linkname = record.slice(equals + 1);
    offset += length;
  }
  return out;
}

export class TarScanner {
  private skip = 0;
  private header = Buffer.alloc(0);
  private ended = false;
  /** The body of an extension header being collected. */
  private extension: { type: string; size: number; parts: Buffer[]; held: number } | null = null;
  private pending: { name?: string; linkname?: string } = {};

  constructor(private readonly onEntry: (entry: TarEntry) => void) {}

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - offset);
        if (this.extension && this.extension.held < this.extension.size) {
          const piece = chunk.subarray(offset, offset + Math.min(take, this.extension.size - this.extension.held));
          this.extension.parts.push(piece);
          this.extension.held += piece.length;
        }
        this.skip -= take;
        offset += take;
        if (this.skip === 0 && this.extension) this.finishExtension();
        continue;
      }
      const need = block - this.header.length;
      const piece = chunk.subarray(offset, offset + need);
      this.header = this.header.length ? Buffer.concat([this.header, piece]) : Buffer.from(piece);
      offset += piece.length;
      if (this.header.length < block) return;
      const header = this.header;
      this.header = Buffer.alloc(0);
      if (header.every((byte) => byte === 0)) {
        this.ended = true;
        return;
      }
      this.onHeader(header);
    }
  }

  private onHeader(header: Buffer): void {
    const type = String.fromCharCode(header[156] || 48);
    const size = parseSize(header);
    this.skip = Math.ceil(size / block) * block;
    if ("xgLK".includes(type)) {
      if (size > maxExtension) throw new Error(`a ${type} extension header of ${size} bytes`);
      this.extension = { type, size, parts: [], held: 0 };
      if (size === 0) this.finishExtension();
      return;
    }
    let name = text(header.subarray(0, 100));
    const ustar = header.toString("ascii", 257, 262) === "ustar";
    const prefix = ustar ? text(header.subarray(345, 500)) : "";
    if (prefix) name = `${prefix}/${name}`;
    const entry = {
      type,
      name: this.pending.name ?? name,
      linkname: this.pending.linkname ?? text(header.subarray(157, 257)),
      size,
    };
    this.pending = {};
    this.onEntry(entry);
  }

  private finishExtension(): void {
    const { type, parts } = this.extension!;
    this.extension = null;
    const body = Buffer.concat(parts);
    if (type === "x") Object.assign(this.pending, parsePax(body));
    else if (type === "L") this.pending.name = text(body);
    else if (type === "K") this.pending.linkname = text(body);
    // "g" (global pax) sets defaults no archive of ours uses
  }
}

/** Counts the entries of a tar stream: directories, and everything else as files. */
export class TarCounter {
  files = 0;
  directories = 0;
  private readonly scanner = new TarScanner((entry) => {
    if (entry.type === "5") this.directories++;
    else this.files++;
  });

  push(chunk: Buffer): void {
    this.scanner.push(chunk);
  }
}
