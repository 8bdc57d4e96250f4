//! `Leaderboard` (examples/leaderboard): the best totals reported by players.
//!
//! Public contract: RPC `report(player: string, total: u64)` records a
//! player's latest total; `top(n: u32) -> list<entry>` returns the `n` best,
//! highest first (`entry { player: string, total: u64 }`).
//! `GET /obj/Leaderboard/<name>/` → the same as JSON.

use dohost_sdk::prelude::*;
use rpc::exports::dohost::examples::leaderboard::Entry;

struct Leaderboard {
    state: State,
}

impl Leaderboard {
    fn report(&mut self, player: String, total: u64) -> Result<()> {
        self.state.storage().sql().exec(
            "INSERT INTO totals (player, total) VALUES (?1, ?2)
             ON CONFLICT (player) DO UPDATE SET total = excluded.total",
            params![player, total],
        )?;
        Ok(())
    }

    fn top(&self, n: u32) -> Result<Vec<Entry>> {
        self.state
            .storage()
            .sql()
            .exec(
                "SELECT player, total FROM totals ORDER BY total DESC, player LIMIT ?",
                params![n],
            )?
            .rows()
    }
}

impl DurableObject for Leaderboard {
    fn new(state: State) -> Result<Self> {
        state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS totals (player TEXT PRIMARY KEY, total INTEGER NOT NULL)",
            params![],
        )?;
        Ok(Leaderboard { state })
    }

    fn fetch(&mut self, req: Request) -> Result<Response> {
        match req.path() {
            "/" => Response::json(&self.top(u32::MAX)?),
            other => Ok(Response::error(404, format!("no route {other}"))),
        }
    }
}

export_object!(Leaderboard);

mod rpc {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "dohost:examples/leaderboard-rpc",
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

export_rpc!(Leaderboard => rpc::exports::dohost::examples::leaderboard {
    fn report(player: String, total: u64);
    fn top(n: u32) -> Vec<Entry>;
});
