// ChatRoom: WebSocket chat with the hibernation API.
//   GET /ws?user=<u>  -> 101 upgrade; the socket is accepted with ctx.acceptWebSocket(server, ["user:"+u])
//                        and carries the attachment {user: u}; "ping" is answered "pong" by the runtime
//                        (setWebSocketAutoResponse) without waking the object.
//   text message      -> stored (last 100 kept) and broadcast to every socket of the room, sender included,
//                        as {"from": u, "text": message}
//   socket closes     -> {"from": "system", "text": "<u> left"} broadcast to the remaining sockets (not stored)
//   GET /history      -> JSON list of the stored messages, oldest first: [{"from", "text"}, ...]
//   GET /users        -> JSON list of the users with an open socket (unique, sorted)
import { DurableObject } from "cloudflare:workers";
import { textError } from "./common.js";

const KEEP = 100;

export class ChatRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, text TEXT NOT NULL)",
    );
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  async fetch(request) {
    const url = new URL(request.url);
    const m = request.method;
    switch (url.pathname) {
      case "/ws": {
        if (m !== "GET") break;
        if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
          return textError(426, "expected a WebSocket upgrade (Upgrade: websocket)");
        }
        const user = url.searchParams.get("user");
        if (!user) return textError(400, "missing ?user=<name>");
        const [client, server] = Object.values(new WebSocketPair());
        this.ctx.acceptWebSocket(server, ["user:" + user]);
        server.serializeAttachment({ user });
        return new Response(null, { status: 101, webSocket: client });
      }
      case "/history":
        if (m !== "GET") break;
        return Response.json(
          this.sql.exec("SELECT sender AS \"from\", text FROM messages ORDER BY seq").toArray(),
        );
      case "/users":
        if (m !== "GET") break;
        return Response.json(this.users());
      default:
        return textError(404, `no route ${url.pathname}`);
    }
    return textError(405, "method not allowed");
  }

  users(except) {
    const seen = new Set();
    for (const ws of this.ctx.getWebSockets()) {
      if (ws === except || ws.readyState !== WebSocket.OPEN) continue;
      const user = ws.deserializeAttachment()?.user;
      if (user !== undefined) seen.add(user);
    }
    return [...seen].sort();
  }

  broadcast(payload, except) {
    const data = JSON.stringify(payload);
    for (const ws of this.ctx.getWebSockets()) {
      if (ws === except) continue;
      try {
        ws.send(data);
      } catch {
        // The socket is closing; its webSocketClose will follow.
      }
    }
  }

  async webSocketMessage(ws, message) {
    const text = typeof message === "string" ? message : new TextDecoder().decode(message);
    const from = ws.deserializeAttachment()?.user ?? "?";
    this.sql.exec("INSERT INTO messages (sender, text) VALUES (?, ?)", from, text);
    this.sql.exec("DELETE FROM messages WHERE seq <= (SELECT MAX(seq) FROM messages) - ?", KEEP);
    this.broadcast({ from, text });
  }

  async webSocketClose(ws, code, reason, wasClean) {
    this.left(ws, code);
  }

  async webSocketError(ws, error) {
    this.left(ws, 1011);
  }

  left(ws, code) {
    const user = ws.deserializeAttachment()?.user ?? "?";
    try {
      // Complete the closing handshake (1005/1006 cannot be sent).
      ws.close(code === 1005 || code === 1006 || code === undefined ? 1000 : code, "bye");
    } catch {
      // Already closed.
    }
    this.broadcast({ from: "system", text: `${user} left` }, ws);
  }
}
