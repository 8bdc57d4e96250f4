// SQL: `ctx.storage.sql` (`SqlStorage`) and the cursor `exec` returns
// (`SqlStorageCursor`), with the mapping between JS values and WIT `sql-value`.

import * as wsql from 'dohost:object/sql@0.2.0';
import * as wstorage from 'dohost:object/storage@0.2.0';
import { isArrayBuffer, ownBytes, toBytes } from './bytes.js';
import { host } from './error.js';

// JS value → WIT `sql-value` ({tag, val}).
function toSqlValue(v) {
  if (v === null || v === undefined) return { tag: 'null' };
  switch (typeof v) {
    case 'bigint':
      return { tag: 'integer', val: v };
    case 'number':
      return Number.isInteger(v) ? { tag: 'integer', val: BigInt(v) } : { tag: 'real', val: v };
    case 'boolean':
      return { tag: 'integer', val: v ? 1n : 0n };
    case 'string':
      return { tag: 'text', val: v };
    default:
      if (isArrayBuffer(v) || ArrayBuffer.isView(v)) return { tag: 'blob', val: toBytes(v) };
      throw new TypeError(`cannot bind a ${v?.constructor?.name ?? typeof v} as an SQL parameter`);
  }
}

// WIT `sql-value` → JS: integers are numbers when safe, BigInt beyond 2^53.
function fromSqlValue(v) {
  switch (v.tag) {
    case 'null':
      return null;
    case 'integer':
      return v.val >= -9007199254740991n && v.val <= 9007199254740991n ? Number(v.val) : v.val;
    case 'real':
    case 'text':
      return v.val;
    case 'blob':
      return ownBytes(v.val);
    default:
      throw new TypeError(`unknown sql-value ${v.tag}`);
  }
}

/** The result of `sql.exec`: all rows of the last statement (fetched eagerly). */
export class SqlStorageCursor {
  #columns;
  #rows;
  #pos = 0;
  #rowsRead;
  #rowsWritten;

  constructor(cursor) {
    this.#columns = cursor.columns;
    this.#rows = cursor.rows;
    this.#rowsRead = Number(cursor.rowsRead);
    this.#rowsWritten = Number(cursor.rowsWritten);
  }
  get columnNames() {
    return this.#columns.slice();
  }
  get rowsRead() {
    return this.#rowsRead;
  }
  get rowsWritten() {
    return this.#rowsWritten;
  }
  #object(row) {
    const o = {};
    this.#columns.forEach((c, i) => (o[c] = fromSqlValue(row[i])));
    return o;
  }
  /** The next row as an object keyed by column name. */
  next() {
    if (this.#pos >= this.#rows.length) return { done: true, value: undefined };
    return { done: false, value: this.#object(this.#rows[this.#pos++]) };
  }
  [Symbol.iterator]() {
    return this;
  }
  /** The remaining rows as objects. */
  toArray() {
    const out = [];
    for (const row of this) out.push(row);
    return out;
  }
  /** The only row; throws unless there is exactly one. */
  one() {
    const rows = this.toArray();
    if (rows.length !== 1) {
      throw new Error(`Expected exactly one result from SQL query, but got ${rows.length === 0 ? 'no' : rows.length} results.`);
    }
    return rows[0];
  }
  /** The remaining rows as arrays of values (column order). */
  raw() {
    const self = this;
    const rows = this.#rows;
    return {
      columnNames: this.columnNames,
      next() {
        if (self.#pos >= rows.length) return { done: true, value: undefined };
        return { done: false, value: rows[self.#pos++].map(fromSqlValue) };
      },
      [Symbol.iterator]() {
        return this;
      },
      toArray() {
        const out = [];
        for (const r of this) out.push(r);
        return out;
      },
    };
  }
}

/** `ctx.storage.sql`. */
export class SqlStorage {
  /** Runs one or more `;`-separated statements; `?` parameters bind in order across them. */
  exec(query, ...bindings) {
    return new SqlStorageCursor(host(wsql.exec, query, bindings.map(toSqlValue)));
  }
  /** Bytes used by the database. */
  get databaseSize() {
    return Number(host(wstorage.databaseSize));
  }
}
