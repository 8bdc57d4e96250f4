// Batcher: buffers items in SQL and flushes them with an alarm.
//   POST   /add[?flush_ms=N]  (body = item text) -> stores the item; if no alarm is set, sets one N ms ahead
//                             (default 1000). Returns {"pending": n, "alarm": epoch_ms}.
//   POST   /fail[?times=K]    -> the next K alarm runs fail (default 1). Returns {"failNext": K}.
//   GET    /                  -> {"pending": n, "flushed": n, "alarm": epoch_ms|null,
//                                 "runs": [{"retryCount": r, "isRetry": b, "ok": b}, ...]}
//   DELETE /alarm             -> deletes the alarm. Returns {"alarm": null}.
// alarm(): a failing run records itself in `runs`, decrements the failure count and throws (the runtime
// retries with backoff); a good run moves all pending items to `flushed` in one transaction.
import { DurableObject } from "cloudflare:workers";
import { textError, intParam, bodyText } from "./common.js";

export class Batcher extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS flushed (seq INTEGER PRIMARY KEY, item TEXT NOT NULL, flushed_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, retry_count INTEGER NOT NULL,
                                       is_retry INTEGER NOT NULL, ok INTEGER NOT NULL, at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    `);
  }

  count(table) {
    return this.sql.exec(`SELECT COUNT(*) AS n FROM ${table}`).one().n;
  }

  failNext() {
    const rows = this.sql.exec("SELECT value FROM settings WHERE key = 'fail_next'").toArray();
    return rows.length ? rows[0].value : 0;
  }

  async fetch(request) {
    const url = new URL(request.url);
    const m = request.method;
    switch (url.pathname) {
      case "/":
        if (m !== "GET") break;
        return Response.json({
          pending: this.count("pending"),
          flushed: this.count("flushed"),
          alarm: await this.ctx.storage.getAlarm(),
          runs: this.sql
            .exec("SELECT retry_count, is_retry, ok FROM runs ORDER BY seq")
            .toArray()
            .map((r) => ({ retryCount: r.retry_count, isRetry: !!r.is_retry, ok: !!r.ok })),
        });
      case "/add": {
        if (m !== "POST") break;
        const { value: flushMs, err } = intParam(url, "flush_ms", 1000, { min: 0 });
        if (err) return err;
        const item = await bodyText(request);
        this.sql.exec("INSERT INTO pending (item) VALUES (?)", item);
        let alarm = await this.ctx.storage.getAlarm();
        if (alarm === null) {
          alarm = Date.now() + flushMs;
          await this.ctx.storage.setAlarm(alarm);
        }
        return Response.json({ pending: this.count("pending"), alarm });
      }
      case "/fail": {
        if (m !== "POST") break;
        const { value: times, err } = intParam(url, "times", 1, { min: 0 });
        if (err) return err;
        this.sql.exec(
          "INSERT INTO settings (key, value) VALUES ('fail_next', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
          times,
        );
        return Response.json({ failNext: times });
      }
      case "/alarm":
        if (m !== "DELETE") break;
        await this.ctx.storage.deleteAlarm();
        return Response.json({ alarm: null });
      default:
        return textError(404, `no route ${url.pathname}`);
    }
    return textError(405, "method not allowed");
  }

  async alarm(info) {
    const retryCount = info?.retryCount ?? 0;
    const isRetry = info?.isRetry ? 1 : 0;
    const now = Date.now();
    const fail = this.failNext();
    if (fail > 0) {
      this.sql.exec("INSERT INTO runs (retry_count, is_retry, ok, at) VALUES (?, ?, 0, ?)", retryCount, isRetry, now);
      this.sql.exec("UPDATE settings SET value = value - 1 WHERE key = 'fail_next'");
      throw new Error(`Batcher alarm failing on purpose (${fail - 1} more to fail)`);
    }
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("INSERT INTO flushed (seq, item, flushed_at) SELECT seq, item, ? FROM pending", now);
      this.sql.exec("DELETE FROM pending");
      this.sql.exec("INSERT INTO runs (retry_count, is_retry, ok, at) VALUES (?, ?, 1, ?)", retryCount, isRetry, now);
    });
  }
}
