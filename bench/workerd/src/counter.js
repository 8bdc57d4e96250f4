// Counter: a durable counter in SQL storage (contract of examples/counter in dohost).
//   GET  /                      -> current value as text ("0" when new)
//   POST /increment[?by=N]      -> new value as text (N defaults to 1; not an integer -> 400)
//   POST /increment-then-fail   -> writes the increment, then throws: 500 and the value is unchanged
// RPC: increment(by = 1) -> new value, get() -> current value.
import { DurableObject } from "cloudflare:workers";
import { text, textError, intParam } from "./common.js";

export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)");
  }

  get() {
    const rows = this.sql.exec("SELECT value FROM counter WHERE id = 1").toArray();
    return rows.length ? rows[0].value : 0;
  }

  increment(by = 1) {
    if (!Number.isSafeInteger(by)) throw new TypeError(`by must be an integer, got ${JSON.stringify(by)}`);
    return this.sql
      .exec(
        "INSERT INTO counter (id, value) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET value = value + ? RETURNING value",
        by,
        by,
      )
      .one().value;
  }

  async fetch(request) {
    const url = new URL(request.url);
    const m = request.method;
    switch (url.pathname) {
      case "/":
        if (m === "GET") return text(this.get());
        break;
      case "/increment": {
        if (m !== "POST") break;
        const { value: by, err } = intParam(url, "by", 1);
        if (err) return err;
        return text(this.increment(by));
      }
      case "/increment-then-fail":
        if (m !== "POST") break;
        // dohost rolls back a failed event's writes; workerd keeps them unless they run inside
        // transactionSync, whose callback throwing rolls them back: same contract (500, value unchanged).
        this.ctx.storage.transactionSync(() => {
          const value = this.increment(1);
          throw new Error(`increment-then-fail: wrote ${value}, now failing on purpose`);
        });
      default:
        return textError(404, `no route ${url.pathname}`);
    }
    return textError(405, "method not allowed");
  }
}
