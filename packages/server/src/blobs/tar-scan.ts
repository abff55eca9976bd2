// Reads the entries of a tar stream as it passes: headers, and on request the
// content as slices of the chunks given (no copy). Extension headers (pax,
// GNU long names) are applied to the entry they precede, so names of any
// length come out whole. Also writes the headers of plain files.
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
  if (!/^[0-7]*$/.test(text)) throw new Error("a tar header has a malformed size");
  return text ? parseInt(text, 8) : 0;
}

/** The header checksum: the sum of its bytes with the checksum field as spaces. */
function checksum(header: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < block; i++) if (i < 148 || i >= 156) sum += header[i]!;
  return sum;
}

const text = (field: Buffer) => field.toString("utf8").replace(/\0.*$/s, "");

/** The `path`, `linkpath` and `size` records of a pax extended header. */
function parsePax(body: Buffer): { name?: string; linkname?: string; size?: number } {
  const out: { name?: string; linkname?: string; size?: number } = {};
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
    else if (key === "size") {
      // honoured as tar honours it: a reader that skipped it would see other members than tar does
      const value = record.slice(equals + 1);
      if (!/^[0-9]{1,15}$/.test(value)) throw new Error("a pax size record is not a number");
      out.size = parseInt(value, 10);
    }
    offset += length;
  }
  return out;
}

export class TarScanner {
  private skip = 0;
  private header = Buffer.alloc(0);
  /** Set once the end-of-archive block has passed. */
  ended = false;
  /** The body of an extension header being collected. */
  private extension: { type: string; size: number; parts: Buffer[]; held: number } | null = null;
  private pending: { name?: string; linkname?: string; size?: number } = {};
  /** Content bytes of the current entry not yet passed on. */
  private content = 0;

  /**
   * `onContent`, when given, receives each entry's content (not its padding)
   * as slices of the pushed chunks, valid only as long as those chunks are.
   */
  constructor(private readonly onEntry: (entry: TarEntry) => void, private readonly onContent?: (piece: Buffer) => void) {}

  /** True between entries: a stream that stops elsewhere was cut short. */
  get atBoundary(): boolean {
    return this.ended || (this.skip === 0 && this.header.length === 0 && !this.extension);
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - offset);
        if (this.extension && this.extension.held < this.extension.size) {
          const piece = chunk.subarray(offset, offset + Math.min(take, this.extension.size - this.extension.held));
          this.extension.parts.push(piece);
          this.extension.held += piece.length;
        } else if (this.content > 0) {
          const piece = chunk.subarray(offset, offset + Math.min(take, this.content));
          this.content -= piece.length;
          this.onContent?.(piece);
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
    const recorded = parseInt(header.toString("ascii", 148, 156).replace(/\0.*$/, "").trim(), 8);
    if (recorded !== checksum(header)) throw new Error("a tar header fails its checksum");
    const type = String.fromCharCode(header[156] || 48);
    const size = !"xgLK".includes(type) && this.pending.size !== undefined ? this.pending.size : parseSize(header);
    this.skip = Math.ceil(size / block) * block;
    if ("xgLK".includes(type)) {
      if (size > maxExtension) throw new Error(`a ${type} extension header of ${size} bytes`);
      this.extension = { type, size, parts: [], held: 0 };
      if (size === 0) this.finishExtension();
      return;
    }
    let name = text(header.subarray(0, 100));
    // only POSIX ustar has a prefix field; GNU's magic ("ustar  ") keeps times there
    const ustar = header.toString("latin1", 257, 263) === "ustar\0";
    const prefix = ustar ? text(header.subarray(345, 500)) : "";
    if (prefix) name = `${prefix}/${name}`;
    const entry = {
      type,
      name: this.pending.name ?? name,
      linkname: this.pending.linkname ?? text(header.subarray(157, 257)),
      size,
    };
    this.pending = {};
    this.content = type === "0" || type === "7" ? size : 0;
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

/** A field of `length` bytes holding `value` in octal, or base-256 when it does not fit. */
function numeric(header: Buffer, offset: number, length: number, value: number): void {
  const octal = value.toString(8);
  if (octal.length < length) {
    header.write(`${octal.padStart(length - 1, "0")}\0`, offset, "ascii");
    return;
  }
  header[offset] = 0x80;
  for (let i = offset + length - 1, rest = value; i > offset; i--, rest = Math.floor(rest / 256)) header[i] = rest % 256;
}

function ustar(name: string, size: number, type: string): Buffer {
  const header = Buffer.alloc(block);
  header.write(name, 0, 100, "utf8");
  numeric(header, 100, 8, 0o644);
  numeric(header, 108, 8, 0);
  numeric(header, 116, 8, 0);
  numeric(header, 124, 12, size);
  numeric(header, 136, 12, 0);
  header.write(type, 156, "ascii");
  header.write("ustar\x0000", 257, "binary");
  header.write(`${checksum(header).toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return header;
}

/**
 * The header of a regular file of `size` bytes (mode 644, owner 0, time 0),
 * with a pax record before it when the name does not fit the ustar field.
 * The content follows, then zeros up to a multiple of 512 (`tarPadding`).
 */
export function tarHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) <= 100) return ustar(name, size, "0");
  // a pax record's length prefix counts its own digits
  const text = `path=${name}`;
  let length = Buffer.byteLength(text) + 3;
  while (Buffer.byteLength(`${length} ${text}\n`) !== length) length = Buffer.byteLength(`${length} ${text}\n`);
  const pax = Buffer.from(`${length} ${text}\n`);
  return Buffer.concat([ustar("PaxHeader", pax.length, "x"), pax, tarPadding(pax.length), ustar(name.slice(0, 100), size, "0")]);
}

/** The zeros that follow `size` bytes of content to the next 512-byte block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((block - (size % block)) % block);
}

/** The end of an archive: two zero blocks. */
export const tarEnd = Buffer.alloc(2 * block);

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
