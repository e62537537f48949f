// PNG text chunks: the generation parameters travel inside the exported image, as `tEXt`
// chunks (Latin-1; `iTXt`, UTF-8, for values outside it), inserted before `IEND`. Readable by
// any PNG tool (`exiftool`, Python's PIL `Image.info`, A1111's "PNG info" via `parameters`).

const SIG = [137, 80, 78, 71, 13, 10, 26, 10];

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, crc = 0xffffffff): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, ~crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

const isLatin1 = (s: string) => [...s].every((c) => c.charCodeAt(0) <= 0xff && c.length === 1);

function textChunk(key: string, value: string): Uint8Array {
  if (!/^[\x20-\x7e]{1,79}$/.test(key)) throw new Error(`PNG text keyword must be 1-79 printable Latin-1 characters: ${key}`);
  if (isLatin1(value)) {
    const d = new Uint8Array(key.length + 1 + value.length);
    for (let i = 0; i < key.length; i++) d[i] = key.charCodeAt(i);
    for (let i = 0; i < value.length; i++) d[key.length + 1 + i] = value.charCodeAt(i);
    return chunk('tEXt', d);
  }
  // keyword \0 compression-flag compression-method language \0 translated-keyword \0 text
  const v = new TextEncoder().encode(value);
  const d = new Uint8Array(key.length + 5 + v.length);
  for (let i = 0; i < key.length; i++) d[i] = key.charCodeAt(i);
  d.set(v, key.length + 5);
  return chunk('iTXt', d);
}

function chunks(png: Uint8Array): { type: string; start: number; end: number; data: Uint8Array }[] {
  if (png.length < 8 || SIG.some((b, i) => png[i] !== b)) throw new Error('not a PNG file');
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out = [];
  let o = 8;
  while (o + 12 <= png.length) {
    const len = dv.getUint32(o);
    const type = String.fromCharCode(...png.subarray(o + 4, o + 8));
    const end = o + 12 + len;
    if (end > png.length) throw new Error('truncated PNG chunk');
    out.push({ type, start: o, end, data: png.subarray(o + 8, o + 8 + len) });
    o = end;
    if (type === 'IEND') break;
  }
  return out;
}

/** A copy of `png` with one text chunk per entry, before IEND. */
export function addTextChunks(png: Uint8Array, entries: [string, string][]): Uint8Array {
  const iend = chunks(png).find((c) => c.type === 'IEND');
  if (!iend) throw new Error('PNG without IEND');
  const extra = entries.map(([k, v]) => textChunk(k, v));
  const size = png.length + extra.reduce((a, c) => a + c.length, 0);
  const out = new Uint8Array(size);
  out.set(png.subarray(0, iend.start), 0);
  let o = iend.start;
  for (const c of extra) {
    out.set(c, o);
    o += c.length;
  }
  out.set(png.subarray(iend.start), o);
  return out;
}

/** The text chunks of a PNG (tEXt and uncompressed iTXt), checking each CRC. */
export function readTextChunks(png: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of chunks(png)) {
    if (c.type !== 'tEXt' && c.type !== 'iTXt') continue;
    const whole = png.subarray(c.start + 4, c.end - 4);
    const stored = new DataView(png.buffer, png.byteOffset).getUint32(c.end - 4);
    if ((~crc32(whole) >>> 0) !== stored) throw new Error(`bad CRC in a ${c.type} chunk`);
    const z = c.data.indexOf(0);
    const key = String.fromCharCode(...c.data.subarray(0, z));
    if (c.type === 'tEXt') {
      out[key] = Array.from(c.data.subarray(z + 1), (b) => String.fromCharCode(b)).join('');
    } else {
      let p = z + 3; // flag, method
      p = c.data.indexOf(0, p) + 1; // language
      p = c.data.indexOf(0, p) + 1; // translated keyword
      out[key] = new TextDecoder().decode(c.data.subarray(p));
    }
  }
  return out;
}
