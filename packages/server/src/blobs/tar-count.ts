// Counts the entries of a tar stream as it passes, reading only headers: no
// copy, no parse of the content. Extension headers (pax, GNU long names) are
// not entries.
const block = 512;

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

export class TarCounter {
  /** Regular files, links and other non-directory entries. */
  files = 0;
  directories = 0;
  private skip = 0;
  private header = Buffer.alloc(0);
  private ended = false;

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - offset);
        this.skip -= take;
        offset += take;
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
      const type = String.fromCharCode(header[156] || 48);
      const size = parseSize(header);
      this.skip = Math.ceil(size / block) * block;
      if (type === "5") this.directories++;
      else if (!"xgLK".includes(type)) this.files++;
    }
  }
}
