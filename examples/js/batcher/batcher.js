// `JsBatcher`: collects items and sends them, in one POST, to an outside
// service — the Batcher pattern of the Durable Objects docs, over outbound
// HTTP. Public contract:
//
// - `POST /obj/JsBatcher/<name>/add` with a text body adds one item and, if
//   none is pending, sets the alarm `FLUSH_AFTER_MS` (a var; default 1000)
//   ahead. Answers `{"pending": n}`.
// - The alarm POSTs `{"batch": "<name>", "items": [...]}` as JSON to
//   `BATCH_URL` (a var) with `Authorization: Bearer <BATCH_TOKEN>` (a secret).
//   A 2xx clears the batch; anything else (or no answer) throws, and the host
//   retries the alarm with its backoff. The attempt is counted before the
//   request leaves, so the output gate commits it first: a failed attempt is
//   still counted (writes after the request are rolled back with the throw).
// - `GET /obj/JsBatcher/<name>/` answers `{"pending", "sent", "attempts"}`.
//
// The class needs `allow = ["<host of BATCH_URL>"]` in its manifest table.

import { DurableObject, Response, exportDynamic, exportObject } from '../../../guest-sdk/js/index.js';

export class JsBatcher extends DurableObject {
  async fetch(request) {
    const url = new URL(request.url);
    if (request.method === 'POST' && url.pathname === '/add') {
      const items = (await this.ctx.storage.get('items')) ?? [];
      items.push(await request.text());
      await this.ctx.storage.put('items', items);
      if ((await this.ctx.storage.getAlarm()) === null) {
        const after = Number.parseInt(this.env.FLUSH_AFTER_MS ?? '1000', 10);
        await this.ctx.storage.setAlarm(Date.now() + after);
      }
      return Response.json({ pending: items.length });
    }
    if (request.method === 'GET' && url.pathname === '/') return Response.json(await this.status());
    return new Response(`no route ${request.method} ${url.pathname}`, { status: 404 });
  }

  async status() {
    const storage = this.ctx.storage;
    return {
      pending: ((await storage.get('items')) ?? []).length,
      sent: (await storage.get('sent')) ?? 0,
      attempts: (await storage.get('attempts')) ?? 0,
    };
  }

  async alarm() {
    const storage = this.ctx.storage;
    const items = (await storage.get('items')) ?? [];
    if (items.length === 0) return;
    await storage.put('attempts', ((await storage.get('attempts')) ?? 0) + 1);
    const res = await fetch(this.env.BATCH_URL, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.env.BATCH_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ batch: this.ctx.id.name ?? String(this.ctx.id), items }),
    });
    if (!res.ok) throw new Error(`the batch service answered ${res.status}: ${await res.text()}`);
    await storage.delete('items');
    await storage.put('sent', ((await storage.get('sent')) ?? 0) + items.length);
  }
}

export const handler = exportObject(JsBatcher);
export const dynamic = exportDynamic(JsBatcher);
export { timerEvents } from '../../../guest-sdk/js/index.js';
