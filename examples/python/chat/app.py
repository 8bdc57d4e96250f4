"""``PyChatRoom``: the ChatRoom example (examples/chat) in Python, over
hibernatable WebSockets. Same public contract:

- ``GET /obj/PyChatRoom/<room>/ws?user=<u>`` upgrades to a WebSocket tagged
  ``user:<u>``, with attachment ``{"user": u}``; the host answers ``ping`` with
  ``pong`` without waking the room. Not an upgrade → 426; no or empty ``user`` → 400.
- Every text message is broadcast to all sockets of the room (the sender too)
  as ``{"from": "<u>", "text": "<message>"}``; the room keeps its last 100
  messages in SQL. Binary messages are ignored.
- ``GET /obj/PyChatRoom/<room>/history`` → JSON list of ``{"from", "text"}``, oldest first.
- ``GET /obj/PyChatRoom/<room>/users`` → JSON list of connected users (from the
  sockets and their attachments, so it works after hibernation).
- A socket closing broadcasts ``{"from": "system", "text": "<u> left"}``.
- Anything else → 404 ``no route <path>``.

Built against world ``dohost:object/object`` (wit/).
"""

import json

from dohost import DurableObject, Response, WebSocketRequestResponsePair, export_object

#: Messages kept in history.
HISTORY = 100


def _json(value) -> Response:
    # Compact like serde_json, so the bodies match the Rust ChatRoom byte for byte.
    return Response(json.dumps(value, separators=(",", ":"), ensure_ascii=False), headers={"content-type": "application/json"})


def _user_of(ws) -> str:
    try:
        a = ws.deserialize_attachment()
    except Exception:  # noqa: BLE001 — a foreign attachment is "unknown", as in Rust
        return "unknown"
    return a["user"] if isinstance(a, dict) and isinstance(a.get("user"), str) else "unknown"


class PyChatRoom(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.storage.sql.exec(
            """CREATE TABLE IF NOT EXISTS messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                sender TEXT NOT NULL,
                text TEXT NOT NULL)"""
        )

    def broadcast(self, sender: str, text: str) -> None:
        """Sends to every open socket; a socket that closed meanwhile is skipped."""
        data = json.dumps({"from": sender, "text": text}, separators=(",", ":"), ensure_ascii=False)
        for ws in self.ctx.get_web_sockets():
            try:
                ws.send(data)
            except Exception:  # noqa: BLE001
                pass

    def fetch(self, request):
        path = request.path
        if request.method == "GET" and path == "/ws":
            if (request.headers.get("upgrade") or "").lower() != "websocket":
                return Response("expected a WebSocket upgrade: GET /ws?user=<name>", status=426)
            user = request.query.get("user")
            if not user:
                return Response("missing ?user=<name>", status=400)
            ws = self.ctx.accept_web_socket([f"user:{user}"])
            ws.serialize_attachment({"user": user})
            self.ctx.set_web_socket_auto_response(WebSocketRequestResponsePair("ping", "pong"))
            return Response(None, status=101)
        if request.method == "GET" and path == "/history":
            rows = self.ctx.storage.sql.exec('SELECT sender AS "from", text FROM messages ORDER BY seq').to_array()
            return _json(rows)
        if request.method == "GET" and path == "/users":
            users = []
            for ws in self.ctx.get_web_sockets():
                user = _user_of(ws)
                if user not in users:
                    users.append(user)
            return _json(users)
        return Response(f"no route {path}", status=404)

    def web_socket_message(self, ws, message):
        if not isinstance(message, str):
            return  # binary messages are ignored
        sender = _user_of(ws)
        self.ctx.storage.sql.exec(
            """INSERT INTO messages (sender, text) VALUES (?, ?);
               DELETE FROM messages WHERE seq <= (SELECT max(seq) FROM messages) - ?""",
            sender,
            message,
            HISTORY,
        )
        self.broadcast(sender, message)

    def web_socket_close(self, ws, code, reason, was_clean):
        self.broadcast("system", f"{_user_of(ws)} left")


Handler = export_object(PyChatRoom)
