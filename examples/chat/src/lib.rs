//! `ChatRoom`: a chat room over hibernatable WebSockets.
//!
//! Public contract (tests and docs rely on it):
//! - `GET /obj/ChatRoom/<room>/ws?user=<u>` upgrades to a WebSocket tagged
//!   `user:<u>`, with attachment `{"user": u}`; the host answers `ping` with
//!   `pong` without waking the room.
//! - Every text message is broadcast to all sockets of the room (the sender
//!   too) as `{"from": "<u>", "text": "<message>"}`; the room keeps its last 100
//!   messages in SQL.
//! - `GET /obj/ChatRoom/<room>/history` → JSON list of `{"from", "text"}`, oldest first.
//! - `GET /obj/ChatRoom/<room>/users` → JSON list of connected users (from the
//!   sockets and their attachments, so it works after hibernation).
//! - A socket closing broadcasts `{"from": "system", "text": "<u> left"}`.

use dohost_sdk::prelude::*;
use dohost_sdk::websocket_prelude::*;
use serde::{Deserialize, Serialize};

/// Messages kept in history.
const HISTORY: i64 = 100;

#[derive(Serialize, Deserialize)]
struct Attachment {
    user: String,
}

#[derive(Serialize, Deserialize)]
struct ChatMessage {
    from: String,
    text: String,
}

struct ChatRoom {
    state: State,
}

impl ChatRoom {
    fn user_of(ws: &WebSocket) -> String {
        ws.deserialize_attachment::<Attachment>()
            .ok()
            .flatten()
            .map_or_else(|| "unknown".to_string(), |a| a.user)
    }

    /// Sends to every open socket; a socket that closed meanwhile is skipped.
    fn broadcast(&self, message: &ChatMessage) -> Result<()> {
        let text = serde_json::to_string(message)?;
        for ws in self.state.get_web_sockets(None)? {
            let _ = ws.send_text(text.clone());
        }
        Ok(())
    }
}

impl DurableObject for ChatRoom {
    fn new(state: State) -> Result<Self> {
        state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                sender TEXT NOT NULL,
                text TEXT NOT NULL)",
            params![],
        )?;
        Ok(ChatRoom { state })
    }

    fn fetch(&mut self, req: Request) -> Result<Response> {
        match (req.method(), req.path()) {
            (Method::Get, "/ws") => {
                if !req.is_web_socket_upgrade() {
                    return Ok(Response::error(
                        426,
                        "expected a WebSocket upgrade: GET /ws?user=<name>",
                    ));
                }
                let Some(user) = req.query("user").filter(|u| !u.is_empty()) else {
                    return Ok(Response::error(400, "missing ?user=<name>"));
                };
                let ws = self.state.accept_web_socket(&[&format!("user:{user}")])?;
                ws.serialize_attachment(&Attachment { user })?;
                self.state
                    .set_web_socket_auto_response(Some(AutoResponse::new("ping", "pong")))?;
                Ok(Response::web_socket_accepted())
            }
            (Method::Get, "/history") => {
                let rows: Vec<ChatMessage> = self
                    .state
                    .storage()
                    .sql()
                    .exec(
                        "SELECT sender AS \"from\", text FROM messages ORDER BY seq",
                        params![],
                    )?
                    .rows()?;
                Response::json(&rows)
            }
            (Method::Get, "/users") => {
                let mut users: Vec<String> = Vec::new();
                for ws in self.state.get_web_sockets(None)? {
                    let user = Self::user_of(&ws);
                    if !users.contains(&user) {
                        users.push(user);
                    }
                }
                Response::json(&users)
            }
            (_, path) => Ok(Response::error(404, format!("no route {path}"))),
        }
    }

    fn web_socket_message(&mut self, ws: WebSocket, message: Message) -> Result<()> {
        let Message::Text(text) = message else {
            return Ok(()); // binary messages are ignored
        };
        let from = Self::user_of(&ws);
        self.state.storage().sql().exec(
            "INSERT INTO messages (sender, text) VALUES (?, ?);
             DELETE FROM messages WHERE seq <= (SELECT max(seq) FROM messages) - ?",
            params![from.as_str(), text.as_str(), HISTORY],
        )?;
        self.broadcast(&ChatMessage { from, text })
    }

    fn web_socket_close(
        &mut self,
        ws: WebSocket,
        _code: u16,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        let user = Self::user_of(&ws);
        self.broadcast(&ChatMessage {
            from: "system".into(),
            text: format!("{user} left"),
        })
    }
}

export_object!(ChatRoom);
