// Small helpers for the WebSocket checks (Node >= 20; Node 20 needs --experimental-websocket).
import http from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** pass/fail bookkeeping with `ok` lines like the shell checks. */
export function reporter() {
  const r = { passed: 0, failed: 0 };
  r.ok = (what, cond, detail = '') => {
    if (cond) {
      r.passed++;
      console.log(`ok    ${what}`);
    } else {
      r.failed++;
      console.log(`FAIL  ${what} ${detail}`);
    }
    return cond;
  };
  r.eq = (what, got, want) => r.ok(what, JSON.stringify(got) === JSON.stringify(want), `got ${JSON.stringify(got)}, wanted ${JSON.stringify(want)}`);
  r.match = (what, got, re) => r.ok(what, typeof got === 'string' && re.test(got), `got ${JSON.stringify(got)}, wanted ${re}`);
  r.eventually = async (what, cond, ms = 10000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await cond()) return true;
      await sleep(50);
    }
    r.ok(what, false, 'timed out');
    return false;
  };
  return r;
}

export function httpClient(base) {
  const get = async (path, init) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  };
  const metrics = async () => {
    const text = (await get('/_dohost/metrics')).body;
    const m = new Map();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const i = line.lastIndexOf(' ');
      m.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return { get: (k) => m.get(k) ?? 0 };
  };
  return { get, metrics };
}

/** A WebSocket client with a message queue (binary messages arrive as ArrayBuffer). */
export class Client {
  static open(url) {
    return new Promise((resolve, reject) => {
      const c = new Client(new WebSocket(url));
      c.ws.addEventListener('open', () => resolve(c), { once: true });
      c.ws.addEventListener('error', () => reject(new Error(`cannot connect ${url}`)), { once: true });
    });
  }
  constructor(ws) {
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    this.queue = [];
    this.waiters = [];
    this.closed = new Promise((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason, wasClean: e.wasClean })));
    ws.addEventListener('message', (e) => {
      const w = this.waiters.shift();
      if (w) w(e.data);
      else this.queue.push(e.data);
    });
  }
  send(m) {
    this.ws.send(m);
  }
  next(ms = 10000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const w = (d) => {
        clearTimeout(t);
        resolve(d);
      };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no message within ${ms} ms`));
      }, ms);
      this.waiters.push(w);
    });
  }
  /** The next message, or `null` if none arrives within `ms`. */
  async maybeNext(ms) {
    try {
      return await this.next(ms);
    } catch {
      return null;
    }
  }
  async nextJson(ms) {
    const d = await this.next(ms);
    return typeof d === 'string' ? JSON.parse(d) : { binary: [...new Uint8Array(d)] };
  }
  async nextBytes(ms) {
    const d = await this.next(ms);
    return typeof d === 'string' ? d : [...new Uint8Array(d)];
  }
  close(code, reason) {
    this.ws.close(code, reason);
  }
}

/**
 * A raw upgrade request: resolves with the status and body the host answers
 * (101: the socket is then destroyed at once, a dropped connection).
 */
export function rawUpgrade(url) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
