// The one reading of a directory archive. Every directory archive that is
// captured, restored, verified or imported passes this check, and a restore
// hands the extractor (GNU tar on the host, the engine's archive API) only the
// archive this check wrote from what it read: a normalized tar holding exactly
// the members it checked, so no reader can see a member the check did not.
//
// The reading is strict: ustar or GNU headers with octal numbers, pax records
// it honours (path, linkpath, size, uid, gid, mtime, the file capability) or
// knows to be harmless (atime, ctime, uname, gname, comment, hdrcharset), GNU
// long names; anything else (base-256 numbers, global or sparse headers, other
// pax records, unknown types, two extensions for one member) is refused.
// Names are handled as bytes (latin1 strings hold one byte per character), so
// a name of any bytes comes out as it went in.
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { StrataError, type ErrorCode } from "@strata/contract";

const block = 512;
/** Extension headers larger than this are refused: real ones hold a few names. */
const maxExtension = 1024 * 1024;
/**
 * The longest member name, in bytes relative to the captured directory, that
 * a restore can make on every path: the kernel's PATH_MAX (4096) less room for
 * the restore path and the engine's own prefix on the host.
 */
export const maxNameBytes = 3072;
/** The longest name of one directory entry (the kernel's NAME_MAX). */
const maxComponentBytes = 255;
/** The longest symbolic link target the kernel stores. */
const maxLinkBytes = 4095;

export type MemberKind = "file" | "hardlink" | "symlink" | "directory";

/** A member as the check read it. Names are bytes in latin1 strings. */
export interface CheckedMember {
  kind: MemberKind;
  /** Relative to the archive's directory, normal: "." for the top, else "a/b". */
  name: string;
  /** Symbolic links: the target as stored. Hard links: the normal name of the file. */
  linkname: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** The `security.capability` extended attribute, when the member has one. */
  capability?: Buffer;
}

export interface CheckOptions {
  /**
   * The code special files (devices, fifos) are refused with:
   * `special_file_unsupported` for a capture, `archive_unsafe_path` (default)
   * for an archive from elsewhere.
   */
  specialCode?: ErrorCode;
  /**
   * Members to leave out (normalized archives only): called with the name
   * relative to the top (as UTF-8, no `./`); a member left out takes nothing
   * of the check, so the predicate must leave out whole subtrees.
   */
  exclude?: (relative: string) => boolean;
  /**
   * Refuse relative symbolic links whose target climbs out of the archive's
   * top: the engine's archive API refuses them (mid-way, as a failure of its
   * own), so a restore through it says so before it starts.
   */
  linksStayInside?: boolean;
  /**
   * Accept members whose parent directories the archive does not name (as
   * tars of a few files often are), for an extractor that makes missing
   * parents inside the target, as the engine's archive API does. A parent
   * the archive made as anything but a directory is still refused.
   */
  implicitParents?: boolean;
  /**
   * A lower limit than `maxNameBytes` on member names, for an extractor that
   * joins them to a long path of its own (the engine's archive API works on
   * full paths on the host, which the kernel limits to PATH_MAX).
   */
  maxNameBytes?: number;
  /** Called with each member once it is checked. */
  onMember?: (member: CheckedMember) => void;
}

/** Pax records honoured. */
const honoured = new Set(["path", "linkpath", "size", "uid", "gid", "mtime", "SCHILY.xattr.security.capability"]);
/** Pax records that change nothing a restore makes (owners are numeric, times other than mtime are not kept). */
const harmless = new Set(["atime", "ctime", "uname", "gname", "comment", "hdrcharset"]);

/** A name for messages: the bytes read as UTF-8. */
const shown = (latin1: string) => Buffer.from(latin1, "latin1").toString("utf8");

function unsafe(why: string): StrataError {
  return new StrataError("archive_unsafe_path", why);
}

/** The bytes of a NUL-terminated field, as a latin1 string. */
function cstring(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString("latin1", 0, end < 0 ? bytes.length : end);
}

function octal(header: Buffer, offset: number, length: number, what: string): number {
  const field = header.subarray(offset, offset + length);
  if (field[0]! & 0x80) throw unsafe(`a tar header has a base-256 ${what}, which is not read`);
  const match = /^ *([0-7]+)[ \0]*$/.exec(field.toString("latin1"));
  if (!match) throw unsafe(`a tar header has a malformed ${what}`);
  return parseInt(match[1]!, 8);
}

function decimal(value: string, what: string): number {
  if (!/^[0-9]{1,15}$/.test(value)) throw unsafe(`a pax ${what} record '${value}' is not a number`);
  return parseInt(value, 10);
}

/** The records of a pax extended header, each key once. */
function paxRecords(body: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset);
    const digits = space < 0 ? "" : body.toString("latin1", offset, space);
    const length = /^[1-9][0-9]{0,7}$/.test(digits) ? parseInt(digits, 10) : 0;
    if (!length || offset + length > body.length || body[offset + length - 1] !== 0x0a) throw unsafe("a pax header is malformed");
    const record = body.toString("latin1", space + 1, offset + length - 1);
    const equals = record.indexOf("=");
    if (equals <= 0) throw unsafe("a pax record has no key");
    const key = record.slice(0, equals);
    if (records.has(key)) throw unsafe(`a pax header holds '${key}' twice`);
    if (!honoured.has(key) && !harmless.has(key)) throw unsafe(`the pax record '${key}' is not read`);
    records.set(key, record.slice(equals + 1));
    offset += length;
  }
  return records;
}

/** The header checksum: the sum of its bytes with the checksum field as spaces. */
function checksum(header: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < block; i++) if (i < 148 || i >= 156) sum += header[i]!;
  return sum;
}

/**
 * Reads a directory archive as it passes, checking every member. Pure logic:
 * `push` returns the output pieces for the bytes given (the normalized
 * archive, or the input itself with `normalize: false`), `end` the rest.
 * Throws a StrataError (`archive_unsafe_path`, `path_too_long`, the special
 * file code, `archive_truncated`) at the first thing refused.
 */
export class DirectoryArchiveCheck {
  /** Members read so far. */
  count = 0;
  /** Whether a member named the top: the map below holds it from the start. */
  private topSeen = false;
  private readonly kinds = new Map<string, MemberKind>([[".", "directory"]]);
  private readonly specialCode: ErrorCode;
  private readonly onMember?: (member: CheckedMember) => void;
  private readonly exclude?: (relative: string) => boolean;
  private readonly linksStayInside: boolean;
  private readonly maxName: number;
  /** With `implicitParents`: directories the archive implies and has not named (yet). */
  private readonly implicit: Set<string> | null;
  /** True while the content of a member left out passes. */
  private skipping = false;
  private header = Buffer.alloc(0);
  private extension: { type: string; size: number; parts: Buffer[]; held: number } | null = null;
  private pax: Map<string, string> | null = null;
  private longName: string | null = null;
  private longLink: string | null = null;
  /** Content bytes of the current member still to come, and its padding after them. */
  private content = 0;
  private padding = 0;
  private ended = false;

  constructor(private readonly normalize: boolean, options: CheckOptions = {}) {
    this.specialCode = options.specialCode ?? "archive_unsafe_path";
    this.onMember = options.onMember;
    this.exclude = normalize ? options.exclude : undefined;
    this.linksStayInside = options.linksStayInside ?? false;
    this.maxName = Math.min(options.maxNameBytes ?? maxNameBytes, maxNameBytes);
    this.implicit = options.implicitParents ? new Set() : null;
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (!this.normalize) out.push(chunk);
    let offset = 0;
    while (offset < chunk.length) {
      if (this.ended) {
        // after the end block only zeros: anything else would be read by some reader and not by another
        for (let i = offset; i < chunk.length; i++) if (chunk[i] !== 0) throw unsafe("the archive has data after its end");
        return out;
      }
      if (this.extension) {
        const ext = this.extension;
        const take = Math.min(ext.size - ext.held, chunk.length - offset);
        ext.parts.push(chunk.subarray(offset, offset + take));
        ext.held += take;
        offset += take;
        if (ext.held === ext.size) {
          this.extension = null;
          this.padding = (block - (ext.size % block)) % block;
          this.finishExtension(ext.type, Buffer.concat(ext.parts));
        }
        continue;
      }
      if (this.content > 0) {
        const take = Math.min(this.content, chunk.length - offset);
        if (this.normalize && !this.skipping) out.push(chunk.subarray(offset, offset + take));
        this.content -= take;
        offset += take;
        if (this.content === 0 && this.normalize && !this.skipping) out.push(Buffer.alloc(this.padding));
        continue;
      }
      if (this.padding > 0) {
        const take = Math.min(this.padding, chunk.length - offset);
        this.padding -= take;
        offset += take;
        continue;
      }
      const piece = chunk.subarray(offset, offset + block - this.header.length);
      this.header = this.header.length ? Buffer.concat([this.header, piece]) : Buffer.from(piece);
      offset += piece.length;
      if (this.header.length < block) break;
      const header = this.header;
      this.header = Buffer.alloc(0);
      if (header.every((byte) => byte === 0)) {
        if (this.extension || this.pax || this.longName !== null || this.longLink !== null) throw unsafe("an extension header precedes the end of the archive");
        this.ended = true;
        continue;
      }
      const emitted = this.onHeader(header);
      if (emitted && this.normalize) out.push(emitted);
    }
    return out;
  }

  /** Call when the input has ended; throws unless the archive was whole. */
  end(): Buffer[] {
    if (!this.ended) throw new StrataError("archive_truncated", "the archive ends before its end block");
    return this.normalize ? [Buffer.alloc(2 * block)] : [];
  }

  private onHeader(header: Buffer): Buffer | null {
    if (octal(header, 148, 8, "checksum") !== checksum(header)) throw unsafe("a tar header fails its checksum");
    const magic = header.toString("latin1", 257, 265);
    const posix = magic === "ustar\x0000";
    if (!posix && magic !== "ustar  \0") throw unsafe("a tar header is neither ustar nor GNU");
    const type = header[156] === 0 ? "0" : String.fromCharCode(header[156]!);
    const headerSize = octal(header, 124, 12, "size");
    if ("xLK".includes(type)) {
      if (headerSize > maxExtension) throw unsafe(`a '${type}' extension header of ${headerSize} bytes`);
      if ((type === "x" && this.pax) || (type === "L" && this.longName !== null) || (type === "K" && this.longLink !== null)) {
        throw unsafe(`two '${type}' extension headers for one member`);
      }
      this.extension = { type, size: headerSize, parts: [], held: 0 };
      if (headerSize === 0) {
        this.extension = null;
        this.finishExtension(type, Buffer.alloc(0));
      }
      return null;
    }
    const pax = this.pax ?? new Map<string, string>();
    if ((pax.has("path") && this.longName !== null) || (pax.has("linkpath") && this.longLink !== null)) {
      throw unsafe("a member is named by both a pax and a GNU extension header");
    }
    let raw = cstring(header.subarray(0, 100));
    const prefix = posix ? cstring(header.subarray(345, 500)) : "";
    if (prefix) raw = `${prefix}/${raw}`;
    raw = pax.get("path") ?? this.longName ?? raw;
    const rawLink = pax.get("linkpath") ?? this.longLink ?? cstring(header.subarray(157, 257));
    this.pax = null;
    this.longName = null;
    this.longLink = null;

    const size = pax.has("size") ? decimal(pax.get("size")!, "size") : headerSize;
    const name = this.normal(raw);
    this.skipping = false;
    if (this.exclude && name !== "." && this.exclude(shown(name))) {
      if (size !== 0 && type !== "0" && type !== "7") throw unsafe(`member '${shown(raw)}' of type '${type}' has content`);
      this.skipping = true;
      this.content = size;
      this.padding = (block - (size % block)) % block;
      return null;
    }
    const kind = this.kindOf(type, raw);
    if (kind !== "file" && size !== 0) throw unsafe(`member '${shown(raw)}' is a ${kind} with content`);
    const mtimeText = pax.get("mtime");
    if (mtimeText !== undefined && !/^-?[0-9]{1,15}(\.[0-9]*)?$/.test(mtimeText)) throw unsafe(`a pax mtime record '${mtimeText}' is not a time`);
    const member: CheckedMember = {
      kind,
      name,
      linkname: "",
      size,
      mode: octal(header, 100, 8, "mode") & 0o7777,
      uid: pax.has("uid") ? decimal(pax.get("uid")!, "uid") : octal(header, 108, 8, "uid"),
      gid: pax.has("gid") ? decimal(pax.get("gid")!, "gid") : octal(header, 116, 8, "gid"),
      mtime: mtimeText !== undefined ? Math.trunc(Number(mtimeText)) : octal(header, 136, 12, "mtime"),
    };
    const capability = pax.get("SCHILY.xattr.security.capability");
    if (capability !== undefined) member.capability = Buffer.from(capability, "latin1");
    this.place(member, rawLink);
    this.count++;
    this.onMember?.(member);
    this.content = kind === "file" ? size : 0;
    this.padding = (block - (size % block)) % block;
    return this.normalize ? memberHeaders(member) : null;
  }

  private kindOf(type: string, raw: string): MemberKind {
    switch (type) {
      case "0":
      case "7":
        return "file";
      case "1":
        return "hardlink";
      case "2":
        return "symlink";
      case "5":
        return "directory";
      case "3":
      case "4":
      case "6": {
        const what = { "3": "a character device", "4": "a block device", "6": "a fifo" }[type];
        throw new StrataError(this.specialCode, `'${shown(raw)}' is ${what}: special files are not kept in directory snapshots`);
      }
      default:
        throw unsafe(`member '${shown(raw)}' has tar type '${type}', which is not restored`);
    }
  }

  /** Refuses a member whose place or link the archive does not make safe, and records it. */
  private place(member: CheckedMember, rawLink: string): void {
    const { name } = member;
    if (name === ".") {
      if (member.kind !== "directory") throw unsafe("the top of the archive must be a directory");
    } else {
      const slash = name.lastIndexOf("/");
      const parent = slash < 0 ? "." : name.slice(0, slash);
      if (this.implicit && !this.kinds.has(parent)) this.implyDirectories(parent);
      if (this.kinds.get(parent) !== "directory") throw unsafe(`member '${shown(name)}' is not under a directory of the archive`);
    }
    // a directory the archive implied may still come as a member of its own, once
    const implied = this.implicit?.delete(name) && member.kind === "directory";
    const twice = name === "." ? this.topSeen : this.kinds.has(name) && !implied;
    if (twice) throw unsafe(`member '${shown(name)}' appears twice in the archive`);
    if (name === ".") this.topSeen = true;
    if (member.kind === "hardlink") {
      const target = this.normal(rawLink);
      if (this.kinds.get(target) !== "file") throw unsafe(`'${shown(name)}' is a hard link to '${shown(rawLink)}', which is not a regular file of the archive`);
      member.linkname = target;
    } else if (member.kind === "symlink") {
      if (!rawLink || rawLink.includes("\0")) throw unsafe(`the symbolic link '${shown(name)}' has no target`);
      if (Buffer.byteLength(rawLink, "latin1") > maxLinkBytes) throw new StrataError("path_too_long", `the symbolic link '${shown(name)}' has a target longer than ${maxLinkBytes} bytes`);
      member.linkname = rawLink;
      if (this.linksStayInside && !rawLink.startsWith("/")) {
        let depth = name.split("/").length - 1;
        for (const part of rawLink.split("/")) {
          if (part === "..") depth--;
          else if (part && part !== ".") depth++;
          if (depth < 0) {
            throw unsafe(`the symbolic link '${shown(name)}' -> '${shown(rawLink)}' climbs out of the directory it is extracted into, which the engine's archive API refuses to make (uploads, and restores into gVisor sandboxes)`);
          }
        }
      }
    }
    if (name !== ".") this.kinds.set(name, member.kind);
  }

  /** Records `path` and its missing ancestors as directories the archive implies. */
  private implyDirectories(path: string): void {
    const parts = path.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const ancestor = parts.slice(0, i).join("/");
      if (this.kinds.has(ancestor)) continue;
      this.kinds.set(ancestor, "directory");
      this.implicit!.add(ancestor);
    }
  }

  /** The normal relative form of a member name: no empty or `.` parts; absolute names and `..` refused. */
  private normal(raw: string): string {
    if (!raw) throw unsafe("a member has no name");
    if (raw.includes("\0")) throw unsafe(`member '${shown(raw)}' has a NUL in its name`);
    if (raw.startsWith("/")) throw unsafe(`member '${shown(raw)}' has an absolute name`);
    const parts = raw.split("/").filter((part) => part && part !== ".");
    if (parts.includes("..")) throw unsafe(`member '${shown(raw)}' climbs out with '..'`);
    const name = parts.length ? parts.join("/") : ".";
    if (parts.some((part) => part.length > maxComponentBytes)) throw new StrataError("path_too_long", `member '${shown(raw)}' has a name part longer than ${maxComponentBytes} bytes`);
    if (name.length > this.maxName) throw new StrataError("path_too_long", `member '${shown(raw).slice(0, 200)}...' has a path of ${name.length} bytes; the limit here is ${this.maxName}`);
    return name;
  }

  private finishExtension(type: string, body: Buffer): void {
    if (type === "x") {
      this.pax = paxRecords(body);
      return;
    }
    const value = cstring(body);
    if (body.subarray(value.length).some((byte) => byte !== 0)) throw unsafe(`a '${type}' extension header holds data after its name`);
    if (type === "L") this.longName = value;
    else this.longLink = value;
  }
}

/** A pax record: its length counts its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.byteLength(key) + value.length + 3; // " ", "=", "\n"
  let length = rest + 1;
  while (String(length).length + rest !== length) length = String(length).length + rest;
  return Buffer.concat([Buffer.from(`${length} ${key}=`), value, Buffer.from("\n")]);
}

function numeric(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, "latin1");
}

function ustarHeader(name: string, type: string, size: number, member: Pick<CheckedMember, "mode" | "uid" | "gid" | "mtime">, linkname = ""): Buffer {
  const header = Buffer.alloc(block);
  header.write(name, 0, 100, "latin1");
  numeric(header, 100, 8, member.mode);
  numeric(header, 108, 8, member.uid);
  numeric(header, 116, 8, member.gid);
  numeric(header, 124, 12, size);
  numeric(header, 136, 12, member.mtime);
  header.write(type, 156, "latin1");
  header.write(linkname, 157, 100, "latin1");
  header.write("ustar\x0000", 257, "latin1");
  header.write(`${checksum(header).toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return header;
}

const maxOctal = (digits: number) => 8 ** digits - 1;

/** The headers of one member in the normalized archive: ustar, with a pax header first where a value does not fit. */
export function memberHeaders(member: CheckedMember): Buffer {
  const name = member.name === "." ? "./" : `./${member.name}${member.kind === "directory" ? "/" : ""}`;
  const linkname = member.kind === "hardlink" ? `./${member.linkname}` : member.linkname;
  const records: Buffer[] = [];
  const bytes = (text: string) => Buffer.from(text, "latin1");
  if (name.length > 100) records.push(paxRecord("path", bytes(name)));
  if (linkname.length > 100) records.push(paxRecord("linkpath", bytes(linkname)));
  if (member.size > maxOctal(11)) records.push(paxRecord("size", bytes(String(member.size))));
  if (member.uid > maxOctal(7)) records.push(paxRecord("uid", bytes(String(member.uid))));
  if (member.gid > maxOctal(7)) records.push(paxRecord("gid", bytes(String(member.gid))));
  const mtimeFits = member.mtime >= 0 && member.mtime <= maxOctal(11);
  if (!mtimeFits) records.push(paxRecord("mtime", bytes(String(member.mtime))));
  if (member.capability) records.push(paxRecord("SCHILY.xattr.security.capability", member.capability));
  const type = { file: "0", hardlink: "1", symlink: "2", directory: "5" }[member.kind];
  const fitted = {
    mode: member.mode,
    uid: Math.min(member.uid, maxOctal(7)),
    gid: Math.min(member.gid, maxOctal(7)),
    mtime: mtimeFits ? member.mtime : 0,
  };
  const main = ustarHeader(name.slice(0, 100), type, Math.min(member.size, maxOctal(11)), fitted, linkname.slice(0, 100));
  if (!records.length) return main;
  const body = Buffer.concat(records);
  const pax = ustarHeader("././@PaxHeader", "x", body.length, { mode: 0o644, uid: 0, gid: 0, mtime: 0 });
  return Buffer.concat([pax, body, Buffer.alloc((block - (body.length % block)) % block), main]);
}

/**
 * A stream that checks a directory archive as it passes (see
 * DirectoryArchiveCheck). With `normalize` it emits the normalized archive
 * (what an extractor should read); without, the input bytes unchanged (what a
 * capture stores). Fails with the check's StrataError.
 */
export function checkedArchive(normalize: boolean, options: CheckOptions = {}): Transform & { check: DirectoryArchiveCheck } {
  const check = new DirectoryArchiveCheck(normalize, options);
  const run = (work: () => Buffer[], done: TransformCallback, stream: Transform) => {
    let pieces: Buffer[];
    try {
      pieces = work();
    } catch (error) {
      return done(error instanceof StrataError ? error : unsafe((error as Error).message));
    }
    for (const piece of pieces) if (piece.length) stream.push(piece);
    done();
  };
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      run(() => check.push(chunk), done, this);
    },
    flush(done) {
      run(() => check.end(), done, this);
    },
  });
  return Object.assign(stream, { check });
}

/**
 * Reads a whole directory archive through the check, as a restore would, and
 * resolves with the number of members and, when a restore through the
 * engine's archive API (gVisor sandboxes) would refuse it, why; rejects with
 * the check's StrataError (or the source's error, such as `blob_corrupt`).
 * For verify, and for an import to call on each directory blob before it
 * accepts it.
 */
export async function checkDirectoryArchive(source: Readable, options: CheckOptions = {}): Promise<{ members: number; engineRefusal?: string }> {
  const check = new DirectoryArchiveCheck(false, options);
  let engine: DirectoryArchiveCheck | null = new DirectoryArchiveCheck(false, { ...options, linksStayInside: true });
  let engineRefusal: string | undefined;
  const engineSees = (work: (engine: DirectoryArchiveCheck) => void) => {
    try {
      if (engine) work(engine);
    } catch (error) {
      engineRefusal = (error as Error).message;
      engine = null;
    }
  };
  try {
    for await (const chunk of source) {
      check.push(chunk as Buffer);
      engineSees((engine) => engine.push(chunk as Buffer));
    }
    check.end();
    engineSees((engine) => engine.end());
  } catch (error) {
    source.destroy();
    throw error;
  }
  return { members: check.count, ...(engineRefusal ? { engineRefusal } : {}) };
}
