// Reading numpy's .npz (a zip of .npy files) in the browser, so feature maps arrive as numbers.

const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;
const END64 = 0x06064b50;
const LOCATOR64 = 0x07064b50;
const FULL32 = 0xffffffff;

/** Little-endian unsigned 64-bit integer as a Number (exact below 2**53, enough here). */
const u64 = (view, at) => view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;

/** Where the central directory starts and how many entries it has (zip64-aware). */
function directory(view) {
  for (let at = view.byteLength - 22; at >= Math.max(0, view.byteLength - 65557); at -= 1) {
    if (view.getUint32(at, true) !== END) continue;
    let count = view.getUint16(at + 10, true);
    let start = view.getUint32(at + 16, true);
    if ((count === 0xffff || start === FULL32) && view.getUint32(at - 20, true) === LOCATOR64) {
      const end64 = u64(view, at - 20 + 8);
      if (view.getUint32(end64, true) !== END64) break;
      count = u64(view, end64 + 32);
      start = u64(view, end64 + 48);
    }
    return { count, start };
  }
  throw new Error("the activations file is not a zip archive");
}

/** The zip64 extra field's sizes and offset, used where the 32-bit fields are full. */
function zip64Extra(view, at, end, sizes) {
  while (at + 4 <= end) {
    const id = view.getUint16(at, true);
    const length = view.getUint16(at + 2, true);
    if (id === 0x0001) {
      let field = at + 4;
      for (const key of ["size", "compressed", "offset"]) {
        if (sizes[key] === FULL32) {
          sizes[key] = u64(view, field);
          field += 8;
        }
      }
    }
    at += 4 + length;
  }
  return sizes;
}

/** The stored bytes of each member: Map name -> {method, bytes}. */
function members(buffer) {
  const view = new DataView(buffer);
  const { count, start } = directory(view);
  const found = new Map();
  let at = start;
  for (let n = 0; n < count; n += 1) {
    if (view.getUint32(at, true) !== CENTRAL) throw new Error("broken zip directory");
    const method = view.getUint16(at + 10, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const name = new TextDecoder().decode(new Uint8Array(buffer, at + 46, nameLength));
    const extra = at + 46 + nameLength;
    const sizes = zip64Extra(view, extra, extra + extraLength, {
      size: view.getUint32(at + 24, true),
      compressed: view.getUint32(at + 20, true),
      offset: view.getUint32(at + 42, true),
    });
    const local = sizes.offset;
    if (view.getUint32(local, true) !== LOCAL) throw new Error("broken zip entry");
    const data = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    found.set(name, { method, bytes: new Uint8Array(buffer, data, sizes.compressed) });
    at = extra + extraLength + commentLength;
  }
  return found;
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const TYPES = { "<f4": Float32Array, "<f8": Float64Array, "<i4": Int32Array, "|u1": Uint8Array };

/** One .npy file's bytes -> {shape, data} (C order, little-endian types only). */
export function parseNpy(bytes) {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new Error("not a .npy array");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const wide = bytes[6] >= 2;
  const headerLength = wide ? view.getUint32(8, true) : view.getUint16(8, true);
  const headerStart = wide ? 12 : 10;
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "";
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const Type = TYPES[descr];
  if (!Type || fortran) throw new Error(`unsupported array type ${descr}`);
  const start = headerStart + headerLength;
  // slice() copies into a fresh, aligned buffer: typed arrays need an aligned start.
  const data = new Type(bytes.slice(start, start + shape.reduce((a, b) => a * b, 1) * Type.BYTES_PER_ELEMENT).buffer);
  return { shape, data };
}

/** An .npz ArrayBuffer -> Map array name -> {shape, data}. */
export async function parseNpz(buffer) {
  const arrays = new Map();
  for (const [name, { method, bytes }] of members(buffer)) {
    if (method !== 0 && method !== 8) throw new Error(`unsupported zip compression ${method}`);
    const raw = method === 8 ? await inflate(bytes) : bytes;
    arrays.set(name.replace(/\.npy$/, ""), parseNpy(raw));
  }
  return arrays;
}
