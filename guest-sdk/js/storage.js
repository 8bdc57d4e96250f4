// Storage: `ctx.storage` (`DurableObjectStorage`): KV (values structured-cloned: clone.js), the
// alarm, nested transactions and `deleteAll`, with `ctx.storage.sql` from sql.js.
// Everything belongs to the current event's transaction.

import * as walarms from 'dohost:object/alarms@0.2.0';
import * as wkv from 'dohost:object/kv@0.2.0';
import * as wstorage from 'dohost:object/storage@0.2.0';
import { deserialize, serialize } from './clone.js';
import { host } from './error.js';
import { SqlStorage } from './sql.js';

function encodeValue(key, value) {
  if (value === undefined) throw new TypeError(`cannot store undefined under key ${JSON.stringify(key)}`);
  try {
    return serialize(value);
  } catch (e) {
    e.message = `cannot store the value of key ${JSON.stringify(key)}: ${e.message}`;
    throw e;
  }
}

function decodeValue(key, bytes) {
  try {
    return deserialize(bytes);
  } catch (e) {
    throw new Error(`value of key ${JSON.stringify(key)} cannot be read: ${e.message}`);
  }
}

/**
 * The key-value API: values are structured-cloned (Map, Set, Date, BigInt,
 * ArrayBuffer and typed arrays, cycles… as on Cloudflare; plain JSON values
 * are stored as JSON text), keys are strings.
 */
class KvStorage {
  /** `get(key)` → value or undefined; `get([keys])` → Map of the keys that exist. */
  get(keys) {
    if (Array.isArray(keys)) {
      const map = new Map();
      for (const [k, v] of host(wkv.getMany, keys)) map.set(k, decodeValue(k, v));
      return map;
    }
    const v = host(wkv.get, keys);
    return v === undefined ? undefined : decodeValue(keys, v);
  }
  /** `put(key, value)` or `put({key: value, ...})`. */
  put(keyOrEntries, value) {
    if (typeof keyOrEntries === 'string') {
      host(wkv.put, keyOrEntries, encodeValue(keyOrEntries, value));
      return;
    }
    const entries = keyOrEntries instanceof Map ? [...keyOrEntries] : Object.entries(keyOrEntries);
    host(wkv.putMany, entries.map(([k, v]) => [k, encodeValue(k, v)]));
  }
  /** `delete(key)` → whether it existed; `delete([keys])` → how many existed. */
  delete(keys) {
    return Array.isArray(keys) ? host(wkv.deleteMany, keys) : host(wkv.delete, keys);
  }
  /** Map of entries in key order: `{prefix, start, startAfter, end, reverse, limit}`. */
  list(options = {}) {
    let start = options.start;
    if (options.startAfter !== undefined) {
      // The smallest key greater than startAfter.
      const after = options.startAfter + '\u0000';
      start = start === undefined || after > start ? after : start;
    }
    const entries = host(wkv.list, {
      prefix: options.prefix,
      start,
      end: options.end,
      reverse: !!options.reverse,
      limit: options.limit,
    });
    const map = new Map();
    for (const [k, v] of entries) map.set(k, decodeValue(k, v));
    return map;
  }
}

/**
 * `ctx.storage`. All methods are synchronous (the host answers in microseconds);
 * `await storage.get(...)` works too. Everything belongs to the current event's
 * transaction.
 */
export class DurableObjectStorage extends KvStorage {
  constructor() {
    super();
    this.sql = new SqlStorage();
    /** Cloudflare's synchronous KV API of SQLite-backed objects (same methods). */
    this.kv = new KvStorage();
  }
  /** Deletes every SQL table, every key and the alarm. */
  deleteAll() {
    host(wstorage.deleteAll);
  }
  /** The alarm time in epoch milliseconds, or null. */
  getAlarm() {
    const t = host(walarms.getAlarm);
    return t === undefined ? null : Number(t);
  }
  /** `setAlarm(epochMs | Date)`. */
  setAlarm(time) {
    const ms = time instanceof Date ? time.getTime() : Number(time);
    if (!Number.isFinite(ms)) throw new TypeError('setAlarm expects a Date or epoch milliseconds');
    host(walarms.setAlarm, BigInt(Math.trunc(ms)));
  }
  deleteAlarm() {
    host(walarms.deleteAlarm);
  }
  /** Runs `fn` in a nested transaction: an exception rolls back its writes and is rethrown. */
  transactionSync(fn) {
    host(wstorage.beginNested);
    let result;
    try {
      result = fn();
    } catch (e) {
      host(wstorage.rollbackNested);
      throw e;
    }
    if (result && typeof result.then === 'function') {
      host(wstorage.rollbackNested);
      throw new TypeError('transactionSync callback must not return a Promise; use transaction()');
    }
    host(wstorage.commitNested);
    return result;
  }
  /**
   * Async variant: `await storage.transaction(async (txn) => { ...; txn.rollback(); })`.
   * Safe because the host delivers one event at a time and imports are synchronous.
   */
  async transaction(fn) {
    host(wstorage.beginNested);
    let rolledBack = false;
    const txn = Object.create(this);
    txn.rollback = () => {
      rolledBack = true;
    };
    let result;
    try {
      result = await fn(txn);
    } catch (e) {
      host(wstorage.rollbackNested);
      throw e;
    }
    host(rolledBack ? wstorage.rollbackNested : wstorage.commitNested);
    return result;
  }
  /** Always durable: the host commits (fsync) before it releases the reply. */
  sync() {
    return Promise.resolve();
  }
}
