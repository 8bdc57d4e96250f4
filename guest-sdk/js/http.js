// HTTP: the `Response` (the platform's, extended to allow status 101),
// `Request` and `Headers`, and the conversions between them and the WIT
// `request`/`response` of the `fetch` handler. Imports nothing of the host.

/**
 * The platform `Response` (StarlingMonkey's Fetch API), extended to allow
 * status 101 (a WebSocket upgrade accepted with `ctx.acceptWebSocket`).
 */
export class Response extends globalThis.Response {
  #upgrade = false;
  #webSocket = null;
  constructor(body, init) {
    const upgrade = init && init.status === 101;
    super(upgrade ? null : body, upgrade ? { ...init, status: 200 } : init);
    this.#upgrade = upgrade;
    // Cloudflare's `{ status: 101, webSocket: client }`: kept, not needed (the host owns the socket).
    if (init && init.webSocket) this.#webSocket = init.webSocket;
  }
  get webSocket() {
    return this.#webSocket;
  }
  get status() {
    return this.#upgrade ? 101 : super.status;
  }
  get ok() {
    return !this.#upgrade && super.ok;
  }
  static json(data, init = {}) {
    const headers = new Headers(init.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new Response(JSON.stringify(data), { ...init, headers });
  }
}

export const Request = globalThis.Request;
export const Headers = globalThis.Headers;

export function requestFromWit(req) {
  const headers = new Headers();
  let host = 'localhost';
  for (const [name, value] of req.headers) {
    try {
      headers.append(name, value);
    } catch {
      // A name or value the Fetch API refuses: skipped.
    }
    if (name.toLowerCase() === 'host' && /^[A-Za-z0-9.\-\[\]:]+$/.test(value)) host = value;
  }
  const hasBody = req.body.length > 0 && req.method !== 'GET' && req.method !== 'HEAD';
  const request = new Request(`http://${host}${req.url.startsWith('/') ? '' : '/'}${req.url}`, {
    method: req.method,
    headers,
    body: hasBody ? req.body : undefined,
  });
  // The Request constructor drops the "forbidden" request headers of the Fetch
  // spec (Host, Upgrade, Connection, Keep-Alive, TE, …), so `Upgrade: websocket`
  // would be invisible. An own `headers` property shows every header received.
  Object.defineProperty(request, 'headers', { value: headers, enumerable: false, configurable: true, writable: false });
  return request;
}

const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'connection']);

export async function responseToWit(res) {
  if (typeof res === 'string') res = new Response(res);
  if (!res || typeof res.status !== 'number' || !res.headers) {
    throw new TypeError(`fetch must return a Response, got ${res === null ? 'null' : typeof res}`);
  }
  const status = res.status;
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`invalid HTTP status ${status}`);
  const headers = [];
  for (const [name, value] of res.headers) if (!HOP_BY_HOP.has(name)) headers.push([name, value]);
  const body = status === 101 ? new Uint8Array(0) : new Uint8Array(await res.arrayBuffer());
  return { status, headers, body };
}
