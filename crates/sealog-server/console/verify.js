// Client-side checking of Sealog inclusion proofs against a signed checkpoint.
//
// The console may be served over plain http, where `crypto.subtle` does not exist, so
// everything here is self-contained: SHA-256, SHA-512, Ed25519 verification (RFC 8032),
// RFC 9162 Merkle inclusion proofs, and the C2SP signed-note and tlog-checkpoint formats
// exactly as `sealog-merkle` (note.rs, checkpoint.rs, text.rs) reads them.
//
// Every export is synchronous and pure. Byte strings are Uint8Array.
//
//   const r = checkInclusion({ note, verifierKey, recordBytes, index, proof });
//   if (!r.ok) show(r.reason);

// ---------------------------------------------------------------------------------------
// Bytes and text
// ---------------------------------------------------------------------------------------

const encoder = new TextEncoder();

/** UTF-8 encoding of `text`. */
export function utf8(text) {
  return encoder.encode(String(text));
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes) {
  bytes = asBytes(bytes, "toHex input");
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] | 0x100).toString(16).slice(1);
  return s;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/** Standard base64 (RFC 4648 §4) with padding. */
export function toBase64(bytes) {
  bytes = asBytes(bytes, "toBase64 input");
  let s = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    s += B64[n >>> 18] + B64[(n >>> 12) & 63] + B64[(n >>> 6) & 63] + B64[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    s += B64[n >>> 18] + B64[(n >>> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    s += B64[n >>> 18] + B64[(n >>> 12) & 63] + B64[(n >>> 6) & 63] + "=";
  }
  return s;
}

/**
 * Decodes standard base64 strictly, as the Rust `base64` crate's STANDARD engine does:
 * length a multiple of 4, padding required, no whitespace or other characters, and the
 * unused bits of the last symbol zero (so every byte string has one spelling).
 * Throws on anything else.
 */
export function fromBase64(text) {
  if (typeof text !== "string") throw new TypeError("base64: expected a string");
  if (text.length % 4 !== 0) throw new Error("base64: length is not a multiple of 4");
  let pad = 0;
  if (text.endsWith("==")) pad = 2;
  else if (text.endsWith("=")) pad = 1;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  const symbols = text.length - pad;
  let o = 0;
  let acc = 0;
  for (let i = 0; i < symbols; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c] : -1;
    if (v < 0) throw new Error(`base64: invalid character at offset ${i}`);
    acc = (acc << 6) | v;
    if ((i & 3) === 3) {
      out[o++] = acc >>> 16;
      out[o++] = (acc >>> 8) & 0xff;
      out[o++] = acc & 0xff;
      acc = 0;
    }
  }
  if (pad === 2) {
    if (acc & 0x0f) throw new Error("base64: non-zero trailing bits");
    out[o++] = acc >>> 4;
  } else if (pad === 1) {
    if (acc & 0x03) throw new Error("base64: non-zero trailing bits");
    out[o++] = acc >>> 10;
    out[o++] = (acc >>> 2) & 0xff;
  }
  return out;
}

function concatBytes(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function asBytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`${what} must be a Uint8Array`);
}

// ---------------------------------------------------------------------------------------
// SHA-2 (FIPS 180-4)
// ---------------------------------------------------------------------------------------

// SHA-512 round constants (FIPS 180-4 §4.2.3: the first 64 bits of the fractional parts
// of the cube roots of the first 80 primes) and initial hash value (§5.3.5: the same for
// the square roots of the first 8 primes). SHA-256's constants (§4.2.2, §5.3.3) are the
// first 32 bits of the same fractions, so they are the high halves of the first 64 and
// of the 8 words here.
const K512_HEX = [
  "428a2f98d728ae22", "7137449123ef65cd", "b5c0fbcfec4d3b2f", "e9b5dba58189dbbc",
  "3956c25bf348b538", "59f111f1b605d019", "923f82a4af194f9b", "ab1c5ed5da6d8118",
  "d807aa98a3030242", "12835b0145706fbe", "243185be4ee4b28c", "550c7dc3d5ffb4e2",
  "72be5d74f27b896f", "80deb1fe3b1696b1", "9bdc06a725c71235", "c19bf174cf692694",
  "e49b69c19ef14ad2", "efbe4786384f25e3", "0fc19dc68b8cd5b5", "240ca1cc77ac9c65",
  "2de92c6f592b0275", "4a7484aa6ea6e483", "5cb0a9dcbd41fbd4", "76f988da831153b5",
  "983e5152ee66dfab", "a831c66d2db43210", "b00327c898fb213f", "bf597fc7beef0ee4",
  "c6e00bf33da88fc2", "d5a79147930aa725", "06ca6351e003826f", "142929670a0e6e70",
  "27b70a8546d22ffc", "2e1b21385c26c926", "4d2c6dfc5ac42aed", "53380d139d95b3df",
  "650a73548baf63de", "766a0abb3c77b2a8", "81c2c92e47edaee6", "92722c851482353b",
  "a2bfe8a14cf10364", "a81a664bbc423001", "c24b8b70d0f89791", "c76c51a30654be30",
  "d192e819d6ef5218", "d69906245565a910", "f40e35855771202a", "106aa07032bbd1b8",
  "19a4c116b8d2d0c8", "1e376c085141ab53", "2748774cdf8eeb99", "34b0bcb5e19b48a8",
  "391c0cb3c5c95a63", "4ed8aa4ae3418acb", "5b9cca4f7763e373", "682e6ff3d6b2b8a3",
  "748f82ee5defb2fc", "78a5636f43172f60", "84c87814a1f0ab72", "8cc702081a6439ec",
  "90befffa23631e28", "a4506cebde82bde9", "bef9a3f7b2c67915", "c67178f2e372532b",
  "ca273eceea26619c", "d186b8c721c0c207", "eada7dd6cde0eb1e", "f57d4f7fee6ed178",
  "06f067aa72176fba", "0a637dc5a2c898a6", "113f9804bef90dae", "1b710b35131c471b",
  "28db77f523047d84", "32caab7b40c72493", "3c9ebe0a15c9bebc", "431d67c49c100d4c",
  "4cc5d4becb3e42b6", "597f299cfc657e2a", "5fcb6fab3ad6faec", "6c44198c4a475817",
];
const H512_HEX = [
  "6a09e667f3bcc908", "bb67ae8584caa73b", "3c6ef372fe94f82b", "a54ff53a5f1d36f1",
  "510e527fade682d1", "9b05688c2b3e6c1f", "1f83d9abfb41bd6b", "5be0cd19137e2179",
];

const high = (hex) => parseInt(hex.slice(0, 8), 16) | 0;
const low = (hex) => parseInt(hex.slice(8), 16) | 0;
const K512_HI = Int32Array.from(K512_HEX, high);
const K512_LO = Int32Array.from(K512_HEX, low);
const H512_HI = Int32Array.from(H512_HEX, high);
const H512_LO = Int32Array.from(H512_HEX, low);
const K256 = K512_HI.slice(0, 64);
const H256 = H512_HI;

// Pads per FIPS 180-4 §5.1: 0x80, zeros, then the message length in bits, big-endian, in
// a field of `lenBytes` bytes (8 for SHA-256, 16 for SHA-512).
function pad(bytes, block, lenBytes) {
  const n = bytes.length;
  const total = Math.ceil((n + 1 + lenBytes) / block) * block;
  const out = new Uint8Array(total);
  out.set(bytes);
  out[n] = 0x80;
  // n * 8 < 2^53 for any array a browser can hold; write it as two 32-bit halves.
  const bitsHi = Math.floor(n / 0x20000000);
  const bitsLo = (n % 0x20000000) * 8;
  const v = new DataView(out.buffer);
  v.setUint32(total - 8, bitsHi);
  v.setUint32(total - 4, bitsLo);
  return out;
}

/** SHA-256 of `bytes`. */
export function sha256(bytes) {
  bytes = asBytes(bytes, "sha256 input");
  const m = pad(bytes, 64, 8);
  const view = new DataView(m.buffer);
  const w = new Int32Array(64);
  let h0 = H256[0], h1 = H256[1], h2 = H256[2], h3 = H256[3];
  let h4 = H256[4], h5 = H256[5], h6 = H256[6], h7 = H256[7];
  for (let off = 0; off < m.length; off += 64) {
    for (let t = 0; t < 16; t++) w[t] = view.getInt32(off + 4 * t);
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K256[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  [h0, h1, h2, h3, h4, h5, h6, h7].forEach((x, i) => ov.setInt32(4 * i, x));
  return out;
}

const TWO32 = 0x100000000;

/** SHA-512 of `bytes`. 64-bit words are kept as (high, low) pairs of 32-bit integers. */
export function sha512(bytes) {
  bytes = asBytes(bytes, "sha512 input");
  const m = pad(bytes, 128, 16);
  const view = new DataView(m.buffer);
  const wh = new Int32Array(80);
  const wl = new Int32Array(80);
  const hh = H512_HI.slice();
  const hl = H512_LO.slice();
  for (let off = 0; off < m.length; off += 128) {
    for (let t = 0; t < 16; t++) {
      wh[t] = view.getInt32(off + 8 * t);
      wl[t] = view.getInt32(off + 8 * t + 4);
    }
    for (let t = 16; t < 80; t++) {
      // σ0(x) = rotr1 ^ rotr8 ^ shr7
      let uh = wh[t - 15], ul = wl[t - 15];
      const s0h = ((uh >>> 1) | (ul << 31)) ^ ((uh >>> 8) | (ul << 24)) ^ (uh >>> 7);
      const s0l = ((ul >>> 1) | (uh << 31)) ^ ((ul >>> 8) | (uh << 24)) ^ ((ul >>> 7) | (uh << 25));
      // σ1(x) = rotr19 ^ rotr61 ^ shr6   (rotr61 = rotr29 of the swapped halves)
      uh = wh[t - 2];
      ul = wl[t - 2];
      const s1h = ((uh >>> 19) | (ul << 13)) ^ ((ul >>> 29) | (uh << 3)) ^ (uh >>> 6);
      const s1l = ((ul >>> 19) | (uh << 13)) ^ ((uh >>> 29) | (ul << 3)) ^ ((ul >>> 6) | (uh << 26));
      const lo = (wl[t - 16] >>> 0) + (s0l >>> 0) + (wl[t - 7] >>> 0) + (s1l >>> 0);
      wh[t] = wh[t - 16] + s0h + wh[t - 7] + s1h + ((lo / TWO32) >>> 0);
      wl[t] = lo;
    }
    let ah = hh[0], al = hl[0], bh = hh[1], bl = hl[1], ch = hh[2], cl = hl[2], dh = hh[3], dl = hl[3];
    let eh = hh[4], el = hl[4], fh = hh[5], fl = hl[5], gh = hh[6], gl = hl[6], xh = hh[7], xl = hl[7];
    for (let t = 0; t < 80; t++) {
      // Σ1(e) = rotr14 ^ rotr18 ^ rotr41   (rotr41 = rotr9 of the swapped halves)
      const S1h = ((eh >>> 14) | (el << 18)) ^ ((eh >>> 18) | (el << 14)) ^ ((el >>> 9) | (eh << 23));
      const S1l = ((el >>> 14) | (eh << 18)) ^ ((el >>> 18) | (eh << 14)) ^ ((eh >>> 9) | (el << 23));
      const chh = (eh & fh) ^ (~eh & gh);
      const chl = (el & fl) ^ (~el & gl);
      const t1l = (xl >>> 0) + (S1l >>> 0) + (chl >>> 0) + (K512_LO[t] >>> 0) + (wl[t] >>> 0);
      const t1h = (xh + S1h + chh + K512_HI[t] + wh[t] + ((t1l / TWO32) >>> 0)) | 0;
      // Σ0(a) = rotr28 ^ rotr34 ^ rotr39   (rotr34, rotr39 = rotr2, rotr7 swapped)
      const S0h = ((ah >>> 28) | (al << 4)) ^ ((al >>> 2) | (ah << 30)) ^ ((al >>> 7) | (ah << 25));
      const S0l = ((al >>> 28) | (ah << 4)) ^ ((ah >>> 2) | (al << 30)) ^ ((ah >>> 7) | (al << 25));
      const majh = (ah & bh) ^ (ah & ch) ^ (bh & ch);
      const majl = (al & bl) ^ (al & cl) ^ (bl & cl);
      const t2l = (S0l >>> 0) + (majl >>> 0);
      const t2h = (S0h + majh + ((t2l / TWO32) >>> 0)) | 0;
      xh = gh; xl = gl;
      gh = fh; gl = fl;
      fh = eh; fl = el;
      const el2 = (dl >>> 0) + (t1l >>> 0);
      eh = (dh + t1h + ((el2 / TWO32) >>> 0)) | 0;
      el = el2 | 0;
      dh = ch; dl = cl;
      ch = bh; cl = bl;
      bh = ah; bl = al;
      const al2 = (t1l >>> 0) + (t2l >>> 0);
      ah = (t1h + t2h + ((al2 / TWO32) >>> 0)) | 0;
      al = al2 | 0;
    }
    const add = (i, vh, vl) => {
      const lo = (hl[i] >>> 0) + (vl >>> 0);
      hh[i] = hh[i] + vh + ((lo / TWO32) >>> 0);
      hl[i] = lo;
    };
    add(0, ah, al); add(1, bh, bl); add(2, ch, cl); add(3, dh, dl);
    add(4, eh, el); add(5, fh, fl); add(6, gh, gl); add(7, xh, xl);
  }
  const out = new Uint8Array(64);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) {
    ov.setInt32(8 * i, hh[i]);
    ov.setInt32(8 * i + 4, hl[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Ed25519 verification (RFC 8032 §5.1), BigInt arithmetic modulo p = 2^255 - 19
// ---------------------------------------------------------------------------------------

const P = (1n << 255n) - 19n;
// Order of the prime-order subgroup generated by the base point.
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

function mod(a) {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function powMod(base, exp) {
  let result = 1n;
  let b = mod(base);
  while (exp > 0n) {
    if (exp & 1n) result = (result * b) % P;
    b = (b * b) % P;
    exp >>= 1n;
  }
  return result;
}

// Curve constant d = -121665/121666 mod p.
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;
const D2 = (2n * D) % P;
// sqrt(-1) = 2^((p-1)/4) mod p.
const SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752n;

function littleEndian(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

// Points are extended homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z,
// x*y = T/Z on -x^2 + y^2 = 1 + d x^2 y^2 (RFC 8032 §5.1.4).
const IDENTITY = { X: 0n, Y: 1n, Z: 1n, T: 0n };

function pointAdd(p, q) {
  const a = mod((p.Y - p.X) * (q.Y - q.X));
  const b = mod((p.Y + p.X) * (q.Y + q.X));
  const c = mod(p.T * D2 * q.T);
  const d = mod(p.Z * 2n * q.Z);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g), T: mod(e * h) };
}

function pointDouble(p) {
  const a = mod(p.X * p.X);
  const b = mod(p.Y * p.Y);
  const c = mod(2n * p.Z * p.Z);
  const h = a + b;
  const s = p.X + p.Y;
  const e = h - mod(s * s);
  const g = a - b;
  const f = c + g;
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g), T: mod(e * h) };
}

function pointNegate(p) {
  return { X: mod(-p.X), Y: p.Y, Z: p.Z, T: mod(-p.T) };
}

function pointEqual(p, q) {
  return mod(p.X * q.Z - q.X * p.Z) === 0n && mod(p.Y * q.Z - q.Y * p.Z) === 0n;
}

// RFC 8032 §5.1.3. Returns null when the 32 bytes are not the canonical encoding of a
// curve point: y >= p, no square root for x, or x = 0 with the sign bit set.
function pointDecode(bytes) {
  const sign = bytes[31] >>> 7;
  const copy = Uint8Array.from(bytes);
  copy[31] &= 0x7f;
  const y = littleEndian(copy);
  if (y >= P) return null;
  const y2 = mod(y * y);
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  // Candidate root x = u v^3 (u v^7)^((p-5)/8).
  const v3 = mod(v * v * v);
  let x = mod(u * v3 * powMod(u * v3 * v3 * v, (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 !== u) {
    if (vx2 !== mod(-u)) return null;
    x = mod(x * SQRT_M1);
  }
  if (x === 0n && sign === 1) return null;
  if (Number(x & 1n) !== sign) x = P - x;
  return { X: x, Y: y, Z: 1n, T: mod(x * y) };
}

// Base point B (RFC 8032 §5.1): y = 4/5 mod p, x the even square root.
const BASE_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
const BASE_Y = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;
const BASE = { X: BASE_X, Y: BASE_Y, Z: 1n, T: (BASE_X * BASE_Y) % P };

// A point of small order (dividing the cofactor 8) vanishes when multiplied by 8.
function hasSmallOrder(p) {
  const q = pointDouble(pointDouble(pointDouble(p)));
  return mod(q.X) === 0n && mod(q.Y - q.Z) === 0n;
}

// [s]P + [t]Q with one shared chain of doublings (Straus / Shamir).
function doubleScalarMul(s, p, t, q) {
  const pq = pointAdd(p, q);
  const sb = s.toString(2);
  const tb = t.toString(2);
  const n = Math.max(sb.length, tb.length);
  const sBits = sb.padStart(n, "0");
  const tBits = tb.padStart(n, "0");
  let acc = IDENTITY;
  for (let i = 0; i < n; i++) {
    acc = pointDouble(acc);
    const bs = sBits.charCodeAt(i) === 49;
    const bt = tBits.charCodeAt(i) === 49;
    if (bs && bt) acc = pointAdd(acc, pq);
    else if (bs) acc = pointAdd(acc, p);
    else if (bt) acc = pointAdd(acc, q);
  }
  return acc;
}

/**
 * Verifies an Ed25519 signature (RFC 8032 §5.1.7): checks [S]B = R + [k]A with
 * k = SHA-512(R || A || message) mod L, without the cofactor. Returns false, never
 * throws, for wrong lengths, a key or R that does not decode to a curve point, S >= L,
 * and, like ed25519-dalek's `verify_strict` that sealog-merkle verifies notes with, for a
 * key or R of small order (no honestly made key or signature has one).
 */
export function ed25519Verify(publicKey, message, signature) {
  try {
    publicKey = asBytes(publicKey, "public key");
    message = asBytes(message, "message");
    signature = asBytes(signature, "signature");
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    const rBytes = signature.subarray(0, 32);
    const s = littleEndian(signature.subarray(32, 64));
    if (s >= L) return false;
    const a = pointDecode(publicKey);
    if (a === null) return false;
    const r = pointDecode(rBytes);
    if (r === null) return false;
    if (hasSmallOrder(a) || hasSmallOrder(r)) return false;
    const k = littleEndian(sha512(concatBytes(rBytes, publicKey, message))) % L;
    // [S]B - [k]A must equal R.
    const check = doubleScalarMul(s, BASE, k, pointNegate(a));
    return pointEqual(check, r);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// RFC 9162 Merkle trees
// ---------------------------------------------------------------------------------------

/** Leaf hash: SHA-256(0x00 || bytes). */
export function leafHash(bytes) {
  bytes = asBytes(bytes, "leaf data");
  const buf = new Uint8Array(bytes.length + 1);
  buf.set(bytes, 1);
  return sha256(buf);
}

/** Interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left, right) {
  left = asBytes(left, "left hash");
  right = asBytes(right, "right hash");
  const buf = new Uint8Array(1 + left.length + right.length);
  buf[0] = 1;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return sha256(buf);
}

const U64_MAX = (1n << 64n) - 1n;

// Accepts a non-negative safe-integer Number or a BigInt below 2^64.
function toU64(value, what) {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new Error(`${what} must be a non-negative safe integer, got ${value}`);
    }
    return BigInt(value);
  }
  if (typeof value === "bigint") {
    if (value < 0n || value > U64_MAX) throw new Error(`${what} ${value} is out of range`);
    return value;
  }
  throw new Error(`${what} must be a number or a BigInt, got ${typeof value}`);
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function popCount(n) {
  let c = 0;
  for (const ch of n.toString(2)) if (ch === "1") c++;
  return c;
}

/** Number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves. */
function inclusionProofLength(index, size) {
  // Below the level where the paths to `index` and to the last leaf meet, every level
  // has a sibling; above it, only the levels where the path turns right.
  const inner = bitLength(index ^ (size - 1n));
  return inner + popCount(index >> BigInt(inner));
}

/**
 * The tree head that `proof` (sibling hashes, leaf level first) implies for the leaf whose
 * leaf hash is `leaf` at `index` in the tree of `size` leaves: RFC 9162 §2.1.3.2. Throws
 * when index >= size or the proof has the wrong number of hashes. The result means
 * something only when compared with a root authenticated for that same size.
 */
export function rootFromInclusionProof(index, size, leaf, proof) {
  const idx = toU64(index, "leaf index");
  const n = toU64(size, "tree size");
  if (idx >= n) throw new Error(`leaf index ${idx} is not below the tree size ${n}`);
  leaf = asBytes(leaf, "leaf hash");
  if (leaf.length !== 32) throw new Error(`leaf hash has ${leaf.length} bytes, not 32`);
  if (!Array.isArray(proof)) throw new Error("proof must be an array of hashes");
  const expected = inclusionProofLength(idx, n);
  if (proof.length !== expected) {
    throw new Error(
      `proof has ${proof.length} hashes; leaf ${idx} of a tree of size ${n} needs ${expected}`,
    );
  }
  let fn = idx;
  let sn = n - 1n;
  let r = leaf;
  proof.forEach((raw, i) => {
    const p = asBytes(raw, `proof hash ${i}`);
    if (p.length !== 32) throw new Error(`proof hash ${i} has ${p.length} bytes, not 32`);
    if (sn === 0n) throw new Error("proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  });
  if (sn !== 0n) throw new Error("proof is too short");
  return r;
}

// ---------------------------------------------------------------------------------------
// C2SP signed notes and checkpoints
// ---------------------------------------------------------------------------------------

const ALG_ED25519 = 0x01;
const SIG_PREFIX = "\u2014 "; // EM DASH, space
const MAX_SIGNATURES = 100;

// Rust's char::is_whitespace (Unicode White_Space).
const WHITESPACE = /[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/; // ASCII controls but newline

function validName(name) {
  return name.length > 0 && !name.includes("+") && !WHITESPACE.test(name) && !/[\u0000-\u001f]/.test(name);
}

function computeKeyId(name, publicKey) {
  return sha256(concatBytes(utf8(name), Uint8Array.of(0x0a, ALG_ED25519), publicKey)).slice(0, 4);
}

/**
 * Parses a verifier key `<name>+<8 lowercase hex key id>+<base64(0x01 || public key)>`.
 * Throws when it is malformed, the key is not a curve point, or the key id does not
 * match SHA-256(name || "\n" || 0x01 || public key)[0..4].
 */
export function parseVerifierKey(vkey) {
  if (typeof vkey !== "string") throw new Error("verifier key must be a string");
  vkey = vkey.trim();
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new Error("malformed verifier key: needs 3 '+'-separated parts");
  const name = vkey.slice(0, first);
  const idHex = vkey.slice(first + 1, second);
  const material = vkey.slice(second + 1);
  if (!validName(name)) throw new Error(`invalid key name ${JSON.stringify(name)}`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error("malformed verifier key: key id must be 8 lowercase hex digits");
  let raw;
  try {
    raw = fromBase64(material);
  } catch {
    throw new Error("malformed verifier key: key material is not valid base64");
  }
  if (raw.length === 0) throw new Error("malformed verifier key: key material is empty");
  if (raw[0] !== ALG_ED25519) {
    throw new Error(`unsupported signature type 0x${raw[0].toString(16).padStart(2, "0")}`);
  }
  if (raw.length !== 33) throw new Error("malformed verifier key: Ed25519 key must be 32 bytes");
  const publicKey = raw.slice(1);
  if (pointDecode(publicKey) === null) throw new Error("invalid Ed25519 public key");
  const computed = computeKeyId(name, publicKey);
  if (toHex(computed) !== idHex) {
    throw new Error(`key id ${idHex} does not match the key (computed ${toHex(computed)})`);
  }
  return { name, keyId: computed, publicKey };
}

function noteString(note) {
  if (typeof note === "string") return note;
  const bytes = asBytes(note, "note");
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new Error("note is not valid UTF-8");
  }
}

/**
 * Checks a signed note (a string, or its UTF-8 bytes) against one verifier key (its
 * string, or what parseVerifierKey returned) and returns the signed text, final newline
 * included. Like sealog-merkle's `note::open`: signature lines by other keys are skipped,
 * a line by this key (same name and key id) that does not verify rejects the note, and
 * so does a note with no line by this key. Throws an Error saying why.
 */
export function verifyNote(noteText, verifierKey) {
  const key = typeof verifierKey === "string" ? parseVerifierKey(verifierKey) : verifierKey;
  if (!key || typeof key.name !== "string" || !key.keyId || !key.publicKey) {
    throw new Error("verifier key must be a key string or a parsed key");
  }
  const note = noteString(noteText);
  if (CONTROL.test(note)) throw new Error("note contains a control character other than newline");
  if (!note.endsWith("\n")) throw new Error("note does not end in a newline");
  // The text may itself contain blank lines; signature lines never do.
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("note has no blank line separating text from signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block.length === 0) throw new Error("note has no signatures");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new Error(`note has more than ${MAX_SIGNATURES} signatures`);
  const message = utf8(text);
  const wantedId = toHex(key.keyId);
  let verified = false;
  lines.forEach((line, i) => {
    const n = i + 1;
    if (!line.startsWith(SIG_PREFIX)) throw new Error(`signature line ${n} is malformed`);
    const rest = line.slice(SIG_PREFIX.length);
    const space = rest.indexOf(" ");
    if (space < 0) throw new Error(`signature line ${n} is malformed`);
    const name = rest.slice(0, space);
    const b64 = rest.slice(space + 1);
    if (!validName(name) || b64.includes(" ")) throw new Error(`signature line ${n} is malformed`);
    let blob;
    try {
      blob = fromBase64(b64);
    } catch {
      throw new Error(`signature line ${n} is not valid base64`);
    }
    if (blob.length < 5) throw new Error(`signature line ${n} is too short to hold a key id and a signature`);
    if (name !== key.name || toHex(blob.subarray(0, 4)) !== wantedId) return;
    const sig = blob.subarray(4);
    if (sig.length !== 64 || !ed25519Verify(key.publicKey, message, sig)) {
      throw new Error(`signature by ${key.name}+${wantedId} does not verify`);
    }
    verified = true;
  });
  if (!verified) throw new Error(`note is not signed by ${key.name}+${wantedId}`);
  return { text };
}

/**
 * Parses a checkpoint body (a note's text) strictly, as sealog-merkle's
 * `Checkpoint::parse`: `<origin>\n<size>\n<base64 root>\n[extension lines\n]`, no empty
 * line, the size in canonical decimal (no sign, no leading zero). Throws when the size
 * is beyond Number.MAX_SAFE_INTEGER.
 */
export function parseCheckpoint(text) {
  if (typeof text !== "string") throw new Error("checkpoint must be a string");
  if (!text.endsWith("\n")) throw new Error("checkpoint does not end in a newline");
  const content = text.slice(0, -1);
  if (CONTROL.test(content)) throw new Error("checkpoint contains a control character other than newline");
  const lines = content.split("\n");
  const empty = lines.findIndex((l) => l.length === 0);
  if (empty >= 0) throw new Error(`checkpoint line ${empty + 1} is empty`);
  if (lines.length < 3) throw new Error(`checkpoint has ${lines.length} lines, needs at least 3`);
  const sizeText = lines[1];
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw new Error(`invalid tree size ${JSON.stringify(sizeText)}`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw new Error(`tree size ${sizeText} is too large for this verifier`);
  let root;
  try {
    root = fromBase64(lines[2]);
  } catch {
    root = null;
  }
  if (root === null || root.length !== 32) throw new Error("root hash is not the base64 encoding of 32 bytes");
  return { origin: lines[0], size, root, extensions: lines.slice(3) };
}

/**
 * The whole check a page runs: the note's signature by `verifierKey`, the checkpoint in
 * it, then whether `proof` (base64 strings or 32-byte arrays) takes the leaf hash of
 * `recordBytes` (the record exactly as stored) at `index` to the checkpoint's root for
 * the checkpoint's size. `size`, when given, is the tree size the proof was made for and
 * must be the checkpoint's. Never throws: returns
 * { ok, reason, size, root } with size and root (hex) from the checkpoint when it parsed.
 */
export function checkInclusion({ note, verifierKey, recordBytes, index, proof, size } = {}) {
  const result = (ok, reason, cp) => ({
    ok,
    reason,
    size: cp ? cp.size : null,
    root: cp ? toHex(cp.root) : null,
  });
  let key;
  try {
    key = typeof verifierKey === "string" ? parseVerifierKey(verifierKey) : verifierKey;
  } catch (e) {
    return result(false, `bad verifier key: ${e.message}`, null);
  }
  let text;
  try {
    ({ text } = verifyNote(note, key));
  } catch (e) {
    return result(false, `bad signature: ${e.message}`, null);
  }
  let cp;
  try {
    cp = parseCheckpoint(text);
  } catch (e) {
    return result(false, `malformed checkpoint: ${e.message}`, null);
  }
  let leaf;
  try {
    leaf = leafHash(asBytes(recordBytes, "recordBytes"));
  } catch (e) {
    return result(false, `bad record: ${e.message}`, cp);
  }
  if (size !== undefined && size !== null) {
    let claimed;
    try {
      claimed = toU64(size, "proof tree size");
    } catch (e) {
      return result(false, `malformed proof: ${e.message}`, cp);
    }
    if (claimed !== BigInt(cp.size)) {
      return result(false, `proof is for tree size ${claimed}, the checkpoint is for size ${cp.size}`, cp);
    }
  }
  let computed;
  try {
    if (!Array.isArray(proof)) throw new Error("proof must be an array of hashes");
    const hashes = proof.map((h, i) => {
      if (typeof h !== "string") return asBytes(h, `proof hash ${i}`);
      try {
        return fromBase64(h);
      } catch {
        throw new Error(`proof hash ${i} is not valid base64`);
      }
    });
    computed = rootFromInclusionProof(index, cp.size, leaf, hashes);
  } catch (e) {
    return result(false, `malformed proof: ${e.message}`, cp);
  }
  if (!equalBytes(computed, cp.root)) {
    return result(
      false,
      `root mismatch: the record and proof give ${toHex(computed)}, the checkpoint says ${toHex(cp.root)}`,
      cp,
    );
  }
  return result(true, `record ${index} is in the tree of size ${cp.size} signed by ${key.name}`, cp);
}
