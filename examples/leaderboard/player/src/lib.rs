//! `Player` (examples/leaderboard): one player's score.
//!
//! Public contract: RPC `add-score(points: u32) -> u64` stores the new total in
//! SQL, then reports it to the `Leaderboard` named `global` and returns it.
//! `GET /obj/Player/<name>/` → the total as text.

use dohost_sdk::prelude::*;

stub! {
    /// The `Leaderboard` class (see examples/leaderboard/board).
    Leaderboard {
        fn report(player: &str, total: u64);
    }
}

struct Player {
    state: State,
}

impl Player {
    fn total(&self) -> Result<u64> {
        let c = self
            .state
            .storage()
            .sql()
            .exec("SELECT total FROM score WHERE id = 1", params![])?;
        Ok(c.rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0) as u64)
    }

    fn add_score(&mut self, points: u32) -> Result<u64> {
        let total: u64 = self
            .state
            .storage()
            .sql()
            .exec(
                "INSERT INTO score (id, total) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET total = total + ?1 RETURNING total",
                params![points],
            )?
            .scalar()?;
        let name = self.state.name().unwrap_or_else(|| self.state.id());
        Leaderboard::stub_by_name("global")?.report(&name, total)?;
        Ok(total)
    }
}

impl DurableObject for Player {
    fn new(state: State) -> Result<Self> {
        state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS score (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)",
            params![],
        )?;
        Ok(Player { state })
    }

    fn fetch(&mut self, req: Request) -> Result<Response> {
        match req.path() {
            "/" => Ok(Response::text(self.total()?.to_string())),
            other => Ok(Response::error(404, format!("no route {other}"))),
        }
    }
}

export_object!(Player);

mod rpc {
    wit_bindgen::generate!({ path: "../../wit", world: "dohost:examples/player-rpc" });
}

export_rpc!(Player => rpc::exports::dohost::examples::player {
    fn add_score(points: u32) -> u64;
});
