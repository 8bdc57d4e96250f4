// Structured clone to bytes, for KV values and WebSocket attachments, as
// Cloudflare stores them (V8 serialization there; StarlingMonkey's own
// structuredClone never hands out bytes). Imports nothing of the host.
//
// A value that JSON carries exactly (null, booleans, strings, finite numbers
// but -0, dense arrays and plain objects, no shared references) is stored as
// JSON text, which the Rust and Python SDKs and old data share. Anything else
// is byte 0x01 then JSON of a flat list of nodes (node 0 is the value): a
// node is a JSON primitive or a tagged array whose references are node
// indices, so cycles and shared references survive. What structured clone
// refuses (functions, symbols, WeakMaps, Promises, …) throws a
// DataCloneError naming what and where.

import { decoder, encoder } from './bytes.js';

const TAGGED = 0x01;
const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
const VIEWS = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
};

/** The error structured clone throws for a value it cannot copy. */
export class DataCloneError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DataCloneError';
  }
}

const tagOf = (v) => Object.prototype.toString.call(v).slice(8, -1);

/** Whether JSON carries `value` exactly (and it holds no object twice). */
function plainJson(value, seen = new Set()) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (seen.has(value)) return false;
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!(i in value) || !plainJson(value[i], seen)) return false;
    return Object.keys(value).length === value.length;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  for (const v of Object.values(value)) if (!plainJson(v, seen)) return false;
  return true;
}

/** `value` as bytes; throws DataCloneError for what cannot be cloned. */
export function serialize(value) {
  if (plainJson(value)) return encoder.encode(JSON.stringify(value));
  const nodes = [];
  const refs = new Map();
  const add = (v, path) => {
    if (v !== null && (typeof v === 'object' || typeof v === 'function')) {
      const known = refs.get(v);
      if (known !== undefined) return known;
    }
    const at = nodes.length;
    nodes.push(null);
    if (v !== null && typeof v === 'object') refs.set(v, at);
    nodes[at] = node(v, path, add);
    return at;
  };
  add(value, 'the value');
  const json = encoder.encode(JSON.stringify(nodes));
  const bytes = new Uint8Array(json.length + 1);
  bytes[0] = TAGGED;
  bytes.set(json, 1);
  return bytes;
}

function node(v, path, add) {
  switch (typeof v) {
    case 'undefined':
      return ['u'];
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0) ? v : ['n', Object.is(v, -0) ? '-0' : String(v)];
    case 'bigint':
      return ['b', v.toString()];
    case 'object':
      return v === null ? null : object(v, path, add);
    default:
      throw new DataCloneError(`${path} is a ${typeof v}, which cannot be cloned (store data, not ${typeof v}s)`);
  }
}

function object(v, path, add) {
  const tag = tagOf(v);
  const at = (key) => `${path}${/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`}`;
  if (Array.isArray(v)) {
    const dense = Object.keys(v).length === v.length && [...v.keys()].every((i) => i in v);
    if (dense) return ['A', ...v.map((x, i) => add(x, `${path}[${i}]`))];
    return ['S', v.length, ...Object.keys(v).flatMap((k) => [k, add(v[k], at(k))])];
  }
  switch (tag) {
    case 'Date':
      return ['D', Number.isNaN(v.getTime()) ? null : v.getTime()];
    case 'RegExp':
      return ['R', v.source, v.flags];
    case 'Map':
      return ['M', ...[...v].flatMap(([k, x], i) => [add(k, `${path} key ${i}`), add(x, `${path}.get(…) ${i}`)])];
    case 'Set':
      return ['T', ...[...v].map((x, i) => add(x, `${path} item ${i}`))];
    case 'ArrayBuffer':
      return ['B', base64(new Uint8Array(v))];
    case 'String':
    case 'Number':
    case 'Boolean':
    case 'BigInt':
      return ['X', tag, add(v.valueOf(), path)];
    default:
      break;
  }
  if (ArrayBuffer.isView(v) && VIEWS[tag]) {
    const length = tag === 'DataView' ? v.byteLength : v.length;
    return ['V', tag, add(v.buffer, `${path}.buffer`), v.byteOffset, length];
  }
  if (v instanceof Error || tag === 'Error') {
    const name = Object.hasOwn(ERRORS, v.name) ? v.name : 'Error';
    return ['E', name, String(v.message), typeof v.stack === 'string' ? v.stack : null];
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== null && proto !== Object.prototype && tag !== 'Object') {
    throw new DataCloneError(`${path} is a ${tag}, which cannot be cloned`);
  }
  // Plain objects, and class instances as their own enumerable properties (as V8 does).
  return ['O', ...Object.keys(v).flatMap((k) => [k, add(v[k], at(k))])];
}

/** The value of `bytes` (JSON text, or tagged nodes). */
export function deserialize(bytes) {
  if (bytes.length === 0 || bytes[0] !== TAGGED) return JSON.parse(decoder.decode(bytes));
  const nodes = JSON.parse(decoder.decode(bytes.subarray(1)));
  const values = new Array(nodes.length);
  const done = new Array(nodes.length).fill(false);
  const get = (i) => {
    if (!done[i]) revive(i);
    return values[i];
  };
  const revive = (i) => {
    const n = nodes[i];
    done[i] = true;
    if (!Array.isArray(n)) {
      values[i] = n;
    } else if (n[0] === 'X') {
      values[i] = Object(get(n[2])); // a boxed primitive
    } else if (n[0] === 'V') {
      if (!Object.hasOwn(VIEWS, n[1])) throw new Error(`dohost: a stored value has an unknown view type ${n[1]}`);
      values[i] = new VIEWS[n[1]](get(n[2]), n[3], n[4]);
    } else {
      values[i] = shell(n); // containers are filled after, so cycles resolve
      fill(values[i], n, get);
    }
  };
  return get(0);
}

/** The value of a node, empty for containers (filled after, for cycles). */
function shell(n) {
  switch (n[0]) {
    case 'u':
      return undefined;
    case 'n':
      return n[1] === '-0' ? -0 : Number(n[1]);
    case 'b':
      return BigInt(n[1]);
    case 'D':
      return new Date(n[1] === null ? NaN : n[1]);
    case 'R':
      return new RegExp(n[1], n[2]);
    case 'A':
      return new Array(n.length - 1);
    case 'S':
      return new Array(n[1]);
    case 'M':
      return new Map();
    case 'T':
      return new Set();
    case 'O':
      return {};
    case 'B':
      return unbase64(n[1]).buffer;
    case 'E': {
      const e = new ERRORS[n[1]](n[2]);
      if (n[3] !== null) e.stack = n[3];
      return e;
    }
    default:
      throw new Error(`dohost: a stored value has an unknown node ${JSON.stringify(n[0])} (written by a newer SDK?)`);
  }
}

function fill(value, n, get) {
  switch (n[0]) {
    case 'A':
      for (let i = 1; i < n.length; i++) value[i - 1] = get(n[i]);
      break;
    case 'S':
    case 'O':
      // Defined, not assigned: a key "__proto__" stays a key.
      for (let i = n[0] === 'S' ? 2 : 1; i < n.length; i += 2) {
        Object.defineProperty(value, n[i], { value: get(n[i + 1]), enumerable: true, writable: true, configurable: true });
      }
      break;
    case 'M':
      for (let i = 1; i < n.length; i += 2) value.set(get(n[i]), get(n[i + 1]));
      break;
    case 'T':
      for (let i = 1; i < n.length; i++) value.add(get(n[i]));
      break;
    default:
      break;
  }
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function base64(bytes) {
  if (typeof bytes.toBase64 === 'function') return bytes.toBase64();
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63];
    out += i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.length ? ALPHABET[n & 63] : '=';
  }
  return out;
}

function unbase64(text) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(text);
  const clean = text.replace(/=+$/, '');
  const bytes = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let at = 0;
  for (const c of clean) {
    acc = (acc << 6) | ALPHABET.indexOf(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[at++] = (acc >> bits) & 255;
    }
  }
  return bytes;
}
