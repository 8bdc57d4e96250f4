// `node:crypto`, the basics: randomness (`randomUUID`, `randomBytes`,
// `randomInt`, `getRandomValues`), `webcrypto`/`subtle`, `timingSafeEqual`, and
// synchronous `createHash`/`createHmac` (md5, sha1, sha224, sha256, sha384,
// sha512) over @noble/hashes. Anything else (ciphers, keys, sign/verify) throws
// a clear error: use `crypto.subtle`.

import { Buffer } from 'buffer';
import { hmac } from '@noble/hashes/hmac.js';
import { md5, sha1 } from '@noble/hashes/legacy.js';
import { sha224, sha256, sha384, sha512 } from '@noble/hashes/sha2.js';

const HASHES = { md5, sha1, sha224, sha256, sha384, sha512 };

function hashOf(algorithm) {
  const hash = HASHES[String(algorithm).toLowerCase().replace('-', '')];
  if (hash === undefined) {
    throw new Error(`node:crypto: digest ${algorithm} is not supported on dohost (one of ${Object.keys(HASHES).join(', ')})`);
  }
  return hash;
}

const bytes = (data, encoding) => (typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : Buffer.from(data.buffer ?? data, data.byteOffset ?? 0, data.byteLength));

class Hash {
  #state;
  constructor(state) {
    this.#state = state;
  }
  update(data, encoding) {
    this.#state.update(bytes(data, encoding));
    return this;
  }
  digest(encoding) {
    const out = Buffer.from(this.#state.digest());
    return encoding === undefined || encoding === 'buffer' ? out : out.toString(encoding);
  }
  copy() {
    return new Hash(this.#state.clone());
  }
}

export const createHash = (algorithm) => new Hash(hashOf(algorithm).create());
export const createHmac = (algorithm, key) => new Hash(hmac.create(hashOf(algorithm), bytes(key)));
export const getHashes = () => Object.keys(HASHES);
export const hash = (algorithm, data, encoding = 'hex') => createHash(algorithm).update(data).digest(encoding);

export const webcrypto = globalThis.crypto;
export const subtle = globalThis.crypto.subtle;
export const getRandomValues = (array) => globalThis.crypto.getRandomValues(array);
export const randomUUID = () => globalThis.crypto.randomUUID();

export function randomBytes(size, callback) {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  if (typeof callback === 'function') {
    queueMicrotask(() => callback(null, out));
    return undefined;
  }
  return out;
}

export function randomInt(min, max, callback) {
  if (max === undefined || typeof max === 'function') [min, max, callback] = [0, min, max];
  const range = max - min;
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || range <= 0) throw new RangeError('randomInt: need safe integers min < max');
  const n = min + Math.floor((globalThis.crypto.getRandomValues(new Uint32Array(2)).reduce((a, b) => a * 2 ** 32 + b, 0) / 2 ** 64) * range);
  if (typeof callback === 'function') {
    queueMicrotask(() => callback(null, n));
    return undefined;
  }
  return n;
}

export function timingSafeEqual(a, b) {
  if (a.byteLength !== b.byteLength) throw new RangeError('Input buffers must have the same byte length');
  const x = bytes(a);
  const y = bytes(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

function unsupported(name) {
  return () => {
    throw new Error(`node:crypto: ${name} is not supported on dohost: use crypto.subtle`);
  };
}

export const createCipheriv = unsupported('createCipheriv');
export const createDecipheriv = unsupported('createDecipheriv');
export const createSign = unsupported('createSign');
export const createVerify = unsupported('createVerify');
export const generateKeyPairSync = unsupported('generateKeyPairSync');
export const pbkdf2Sync = unsupported('pbkdf2Sync');
export const scryptSync = unsupported('scryptSync');

export default {
  createHash,
  createHmac,
  getHashes,
  hash,
  webcrypto,
  subtle,
  getRandomValues,
  randomUUID,
  randomBytes,
  randomInt,
  timingSafeEqual,
  createCipheriv,
  createDecipheriv,
  createSign,
  createVerify,
  generateKeyPairSync,
  pbkdf2Sync,
  scryptSync,
};
