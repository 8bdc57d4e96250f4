// Bytes and strings crossing the WIT boundary: conversions to `list<u8>`, copies
// of the bindings' Uint8Arrays into this realm, and type names for error messages.
// Imports nothing of the host.

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

// `instanceof` is avoided: values may come from the bindings' realm.
export function isArrayBuffer(v) {
  return Object.prototype.toString.call(v) === '[object ArrayBuffer]';
}

export function toBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (isArrayBuffer(v)) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return encoder.encode(v);
  throw new TypeError(`expected a string, Uint8Array or ArrayBuffer, got ${typeof v}`);
}

// The generated bindings run in their own realm: a Uint8Array they return is
// not `instanceof Uint8Array` here. Copy it into this realm.
export function ownBytes(v) {
  return new Uint8Array(v);
}

// A short name of a value's type, for TypeErrors.
export function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}
