// The chat app's Worker (its entry), in front of two classes:
//
// - `GET /api/room/<name>/websocket?user=<u>`: a WebSocket to the chat room
//   <name> (bound as ROOMS: the ChatRoom contract of examples/js/chat), after
//   the client's IP passed its `RateLimiter` (bound as LIMITERS): over the
//   limit → 429 with Retry-After. The upgrade is forwarded with
//   `room.fetch(new Request(url, request))`, so the socket is the room's own,
//   hibernatable, exactly as when a client reaches the room directly.
// - `GET /api/room/<name>/history` and `/users`: the room's answers.
// - Anything else → 404.

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const route = /^\/api\/room\/([^/]+)\/(websocket|history|users)$/.exec(url.pathname);
    if (route === null) return text(404, `no route ${url.pathname}`);
    let room;
    try {
      room = env.ROOMS.getByName(decodeURIComponent(route[1]));
    } catch (e) {
      return text(400, `invalid room name: ${e.message}`);
    }
    if (route[2] !== 'websocket') return room.fetch(`/${route[2]}`);
    const ip = request.headers.get('cf-connecting-ip') ?? 'unknown';
    const wait = await env.LIMITERS.getByName(ip).check();
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      return text(429, `rate limited: ${ip} may connect again in ${seconds} s`, { 'retry-after': String(seconds) });
    }
    return room.fetch(new Request(new URL(`/ws${url.search}`, url), request));
  },
};

function text(status, message, headers = {}) {
  return new Response(message, { status, headers: { 'content-type': 'text/plain; charset=utf-8', ...headers } });
}
