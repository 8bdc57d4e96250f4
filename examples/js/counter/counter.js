// `JsCounter`: the Counter example in JavaScript (same contract as examples/counter).
//
// - `GET  /obj/JsCounter/<name>/`                     → current value as text (`0` when new)
// - `POST /obj/JsCounter/<name>/increment[?by=N]`     → new value as text (N defaults to 1;
//                                                      not an integer → 400)
// - `POST /obj/JsCounter/<name>/increment-then-fail`  → writes the increment, then throws:
//   the exception traps, the client gets 500 and the stored value is unchanged.
// - RPC (`dohost:examples/counter`): `increment(by: s64) -> s64`, `get() -> s64`.
//
// Built against world `dohost:examples/counter-class` (examples/wit).

import { DurableObject, Response, exportDynamic, exportObject, exportRpc, s64 } from '../../../guest-sdk/js/index.js';

const INTEGER = /^[+-]?\d+$/;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

export class JsCounter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)');
  }

  /** The current value (BigInt: SQLite integers are 64-bit). */
  value() {
    const rows = this.sql.exec('SELECT value FROM counter WHERE id = 1').raw().toArray();
    return rows.length ? BigInt(rows[0][0]) : 0n;
  }

  /**
   * Adds `by` (BigInt or integer number) and returns the new value as a BigInt.
   * SQLite turns an overflowing integer sum into a REAL: that throws instead
   * (from fetch or RPC, the exception traps and the write is rolled back).
   */
  add(by) {
    const [[value, type]] = this.sql
      .exec(
        `INSERT INTO counter (id, value) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET value = value + ?1
         RETURNING value, typeof(value)`,
        BigInt(by),
      )
      .raw()
      .toArray();
    if (type !== 'integer') throw new RangeError(`counter overflow: adding ${by} leaves the 64-bit range`);
    return BigInt(value);
  }

  async fetch(request) {
    const url = new URL(request.url);
    const route = url.pathname;
    const method = request.method;
    if (route === '/' && method === 'GET') {
      return new Response(String(this.value()));
    }
    if (route === '/increment' && method === 'POST') {
      const raw = url.searchParams.get('by');
      let by = 1n;
      if (raw !== null) {
        if (!INTEGER.test(raw) || BigInt(raw) < I64_MIN || BigInt(raw) > I64_MAX) {
          return new Response(`?by must be an integer, got ${JSON.stringify(raw)}`, { status: 400 });
        }
        by = BigInt(raw);
      }
      return new Response(String(this.add(by)));
    }
    if (route === '/increment-then-fail' && method === 'POST') {
      const value = this.add(1n);
      // Escapes fetch → the component traps → the host rolls the event back.
      throw new Error(`increment-then-fail: wrote ${value}, now failing on purpose`);
    }
    if (route === '/' || route === '/increment' || route === '/increment-then-fail') {
      return new Response('method not allowed', { status: 405 });
    }
    return new Response(`no route ${route}`, { status: 404 });
  }

  // RPC methods of dohost:examples/counter (s64 arrives and leaves as BigInt;
  // `s64()` undoes componentize-js delivering a negative argument as 2^64 + v).
  increment(by) {
    return this.add(s64(by));
  }

  get() {
    return this.value();
  }
}

export const handler = exportObject(JsCounter);
export const counter = exportRpc(JsCounter, ['increment', 'get']);
// Every other public method (`add`, `value`) is untyped RPC.
export const dynamic = exportDynamic(JsCounter);
export { timerEvents } from '../../../guest-sdk/js/index.js';
