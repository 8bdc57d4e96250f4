// `JsChatRoom`: the ChatRoom example (examples/chat) in JavaScript, over
// hibernatable WebSockets. Same public contract:
//
// - `GET /obj/JsChatRoom/<room>/ws?user=<u>` upgrades to a WebSocket tagged
//   `user:<u>`, with attachment `{"user": u}`; the host answers `ping` with
//   `pong` without waking the room. Not an upgrade → 426; no or empty `user` → 400.
// - Every text message is broadcast to all sockets of the room (the sender
//   too) as `{"from": "<u>", "text": "<message>"}`; the room keeps its last 100
//   messages in SQL. Binary messages are ignored.
// - `GET /obj/JsChatRoom/<room>/history` → JSON list of `{"from", "text"}`, oldest first.
// - `GET /obj/JsChatRoom/<room>/users` → JSON list of connected users (from the
//   sockets and their attachments, so it works after hibernation).
// - A socket closing broadcasts `{"from": "system", "text": "<u> left"}`.
// - Anything else → 404 `no route <path>`.
//
// Built against world `dohost:object/object` (wit/).

import { DurableObject, Response, WebSocketRequestResponsePair, exportDynamic, exportObject } from '../../../guest-sdk/js/index.js';

/** Messages kept in history. */
const HISTORY = 100;

function textResponse(status, message) {
  return new Response(message, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}

export class JsChatRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS messages (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      sender TEXT NOT NULL,
      text TEXT NOT NULL)`);
  }

  /** The user a socket belongs to, from its attachment. */
  static userOf(ws) {
    try {
      const a = ws.deserializeAttachment();
      return a !== null && typeof a === 'object' && typeof a.user === 'string' ? a.user : 'unknown';
    } catch {
      return 'unknown';
    }
  }

  /** Sends to every open socket; a socket that closed meanwhile is skipped. */
  broadcast(message) {
    const text = JSON.stringify({ from: message.from, text: message.text });
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(text);
      } catch {
        // closed meanwhile
      }
    }
  }

  async fetch(request) {
    const url = new URL(request.url);
    const path = url.pathname;
    if (request.method === 'GET' && path === '/ws') {
      if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
        return textResponse(426, 'expected a WebSocket upgrade: GET /ws?user=<name>');
      }
      const user = url.searchParams.get('user');
      if (!user) return textResponse(400, 'missing ?user=<name>');
      const ws = this.ctx.acceptWebSocket([`user:${user}`]);
      ws.serializeAttachment({ user });
      this.ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
      return new Response(null, { status: 101 });
    }
    if (request.method === 'GET' && path === '/history') {
      const rows = this.ctx.storage.sql.exec('SELECT sender AS "from", text FROM messages ORDER BY seq').toArray();
      return Response.json(rows);
    }
    if (request.method === 'GET' && path === '/users') {
      const users = [];
      for (const ws of this.ctx.getWebSockets()) {
        const user = JsChatRoom.userOf(ws);
        if (!users.includes(user)) users.push(user);
      }
      return Response.json(users);
    }
    return textResponse(404, `no route ${path}`);
  }

  webSocketMessage(ws, message) {
    if (typeof message !== 'string') return; // binary messages are ignored
    const from = JsChatRoom.userOf(ws);
    this.ctx.storage.sql.exec(
      `INSERT INTO messages (sender, text) VALUES (?, ?);
       DELETE FROM messages WHERE seq <= (SELECT max(seq) FROM messages) - ?`,
      from,
      message,
      HISTORY,
    );
    this.broadcast({ from, text: message });
  }

  webSocketClose(ws, code, reason, wasClean) {
    this.broadcast({ from: 'system', text: `${JsChatRoom.userOf(ws)} left` });
  }
}

export const handler = exportObject(JsChatRoom);
export const dynamic = exportDynamic(JsChatRoom);
export { timerEvents } from '../../../guest-sdk/js/index.js';
