//! A Jepsen-style "set" check with an acknowledged-write ledger: concurrent
//! clients write unique rows (TenantDb), increments (Counter, over HTTP and
//! RPC), chat messages (ChatRoom over WebSockets) and socket joins (an accept
//! that writes, `Hostile/join`) while the host is SIGKILLed at random moments.
//! Every acknowledged write must survive — an HTTP or RPC reply, a chat
//! broadcast a client received, a 101 — and nothing that was never attempted
//! may appear.

use crate::TestHost;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A small deterministic PRNG (xorshift64*), so a failing seed replays.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What a client learned about one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A definite error: the write did not happen.
    Failed,
    /// Timeout or dropped connection: it may or may not have happened.
    Unknown,
}

/// Every operation and its outcome, across rounds.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Inserted value → outcome, per TenantDb object.
    pub inserts: BTreeMap<String, BTreeMap<String, Outcome>>,
    /// Increments per Counter object: (ok, unknown).
    pub increments: BTreeMap<String, (u64, u64)>,
    /// Chat messages per room: text → Ok once a broadcast of it was received
    /// (by any client), Unknown while it was only sent.
    pub chats: BTreeMap<String, BTreeMap<String, Outcome>>,
    /// Joins per Hostile object: token → Ok once the 101 arrived.
    pub joins: BTreeMap<String, BTreeMap<String, Outcome>>,
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub rounds: u64,
    pub acknowledged: u64,
    pub unknown: u64,
    pub failed: u64,
    pub lost: u64,
    /// Of `acknowledged`: chat messages received, and joins accepted.
    pub chats_acknowledged: u64,
    pub joins_acknowledged: u64,
}

const TENANTS: usize = 3;
const COUNTERS: usize = 3;
const CLIENTS: usize = 8;
/// Chat clients per round, each in rooms of its own.
const CHATTERS: usize = 2;
/// Messages per room: the room keeps its last 100, so a chatter moves on to a
/// new room after this many.
const CHAT_MESSAGES: usize = 90;

/// Records `text` sent or received in `room`; a receipt upgrades it to Ok.
fn chat(ledger: &Mutex<Ledger>, room: &str, text: &str, outcome: Outcome) {
    let mut l = ledger.lock().unwrap();
    let entry = l
        .chats
        .entry(room.to_string())
        .or_default()
        .entry(text.to_string())
        .or_insert(outcome);
    if outcome == Outcome::Ok {
        *entry = Outcome::Ok;
    }
}

/// One chat client of a round: in room after room, sends unique messages one
/// at a time and waits for their broadcast, until the host goes away.
async fn chatter(url: String, ledger: Arc<Mutex<Ledger>>, round: u64, c: usize) {
    for r in 0.. {
        let room = format!("chat-r{round}-c{c}-{r}");
        let ws_url = format!(
            "{}/obj/ChatRoom/{room}/ws?user=c{c}",
            url.replacen("http://", "ws://", 1)
        );
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(ws_url),
        )
        .await
        else {
            return;
        };
        for n in 0..CHAT_MESSAGES {
            let text = format!("{room}-{n}");
            chat(&ledger, &room, &text, Outcome::Unknown);
            let sent = ws
                .send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
                .await;
            if sent.is_err() {
                return;
            }
            loop {
                let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
                let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) = next else {
                    match next {
                        Ok(Some(Ok(_))) => continue, // ping, pong
                        _ => return,                 // the host is gone
                    }
                };
                let Ok(m) = serde_json::from_str::<serde_json::Value>(&t) else {
                    continue;
                };
                let Some(got) = m["text"].as_str() else {
                    continue;
                };
                if m["from"] != "system" {
                    chat(&ledger, &room, got, Outcome::Ok);
                }
                if got == text {
                    break;
                }
            }
        }
    }
}

/// Joins `Hostile/join-r<round>` over and over, one socket at a time.
async fn joiner(url: String, ledger: Arc<Mutex<Ledger>>, round: u64) {
    let object = format!("join-r{round}");
    for n in 0.. {
        let token = format!("r{round}-j{n}");
        let ws_url = format!(
            "{}/obj/Hostile/{object}/join?token={token}",
            url.replacen("http://", "ws://", 1)
        );
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(ws_url),
        )
        .await;
        let outcome = match connected {
            Ok(Ok((ws, _))) => {
                drop(ws);
                Outcome::Ok
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(res)))
                if res.status().is_client_error() || res.status().is_server_error() =>
            {
                Outcome::Failed
            }
            _ => Outcome::Unknown,
        };
        ledger
            .lock()
            .unwrap()
            .joins
            .entry(object.clone())
            .or_default()
            .insert(token, outcome);
        if outcome == Outcome::Unknown {
            return;
        }
    }
}

/// Runs `rounds` kill-and-restart rounds from `seed` against `host` and checks
/// the ledger after each. Panics (with the seed) on a lost or phantom write.
pub async fn run(host: &mut TestHost, seed: u64, rounds: u64) -> Totals {
    let mut rng = Rng::new(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut totals = Totals::default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (client, url, ledger) = (client.clone(), host.url.clone(), ledger.clone());
            let mut crng = Rng::new(rng.next_u64());
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    if crng.below(2) == 0 {
                        let tenant = format!("t{}", crng.below(TENANTS as u64));
                        let value = format!("r{round}-c{c}-{n}");
                        let body = json!({
                            "query": "CREATE TABLE IF NOT EXISTS ledger (v TEXT PRIMARY KEY); INSERT INTO ledger (v) VALUES (?)",
                            "params": [value],
                        });
                        let res = client.post(format!("{url}/obj/TenantDb/{tenant}/sql")).body(body.to_string()).send().await;
                        let outcome = match res {
                            Ok(r) if r.status() == 200 => match r.text().await {
                                Ok(_) => Outcome::Ok,
                                Err(_) => Outcome::Unknown,
                            },
                            Ok(r) if r.status().is_client_error() || r.status().is_server_error() => Outcome::Failed,
                            _ => Outcome::Unknown,
                        };
                        ledger.lock().unwrap().inserts.entry(tenant).or_default().insert(value, outcome);
                        if outcome == Outcome::Unknown {
                            return;
                        }
                    } else {
                        let counter = format!("c{}", crng.below(COUNTERS as u64));
                        // Over HTTP (fetch) or RPC: both replies wait for the commit.
                        let res = if crng.below(2) == 0 {
                            client.post(format!("{url}/obj/Counter/{counter}/increment")).send().await
                        } else {
                            client.post(format!("{url}/rpc/Counter/{counter}/increment")).body("[1]").send().await
                        };
                        let outcome = match res {
                            Ok(r) if r.status() == 200 => match r.text().await {
                                Ok(_) => Outcome::Ok,
                                Err(_) => Outcome::Unknown,
                            },
                            Ok(r) if r.status().is_server_error() || r.status().is_client_error() => Outcome::Failed,
                            _ => Outcome::Unknown,
                        };
                        let mut l = ledger.lock().unwrap();
                        let entry = l.increments.entry(counter).or_default();
                        match outcome {
                            Outcome::Ok => entry.0 += 1,
                            Outcome::Unknown => entry.1 += 1,
                            Outcome::Failed => {}
                        }
                        if outcome == Outcome::Unknown {
                            return;
                        }
                    }
                }
            }));
        }
        for c in 0..CHATTERS {
            tasks.push(tokio::spawn(chatter(
                host.url.clone(),
                ledger.clone(),
                round,
                c,
            )));
        }
        tasks.push(tokio::spawn(joiner(
            host.url.clone(),
            ledger.clone(),
            round,
        )));
        // Let the clients run, then pull the plug.
        tokio::time::sleep(Duration::from_millis(50 + rng.below(400))).await;
        host.kill().await;
        for t in tasks {
            let _ = t.await;
        }
        host.restart().await;
        let snapshot = ledger.lock().unwrap().clone();
        let lost = check(host, &snapshot, seed, round).await;
        totals.rounds += 1;
        totals.lost += lost;
    }
    let l = ledger.lock().unwrap();
    for outcomes in l.inserts.values() {
        for o in outcomes.values() {
            match o {
                Outcome::Ok => totals.acknowledged += 1,
                Outcome::Failed => totals.failed += 1,
                Outcome::Unknown => totals.unknown += 1,
            }
        }
    }
    for (ok, unknown) in l.increments.values() {
        totals.acknowledged += ok;
        totals.unknown += unknown;
    }
    let ok = |m: &BTreeMap<String, BTreeMap<String, Outcome>>| -> u64 {
        m.values()
            .flat_map(|o| o.values())
            .filter(|o| **o == Outcome::Ok)
            .count() as u64
    };
    totals.chats_acknowledged = ok(&l.chats);
    totals.joins_acknowledged = ok(&l.joins);
    for outcomes in l.chats.values().chain(l.joins.values()) {
        for o in outcomes.values() {
            match o {
                Outcome::Ok => totals.acknowledged += 1,
                Outcome::Failed => totals.failed += 1,
                Outcome::Unknown => totals.unknown += 1,
            }
        }
    }
    totals
}

/// Checks the ledger against the restarted host; returns the writes lost.
async fn check(host: &TestHost, ledger: &Ledger, seed: u64, round: u64) -> u64 {
    let mut lost = 0;
    for (tenant, outcomes) in &ledger.inserts {
        let (status, result) = host
            .post_json(
                &format!("/obj/TenantDb/{tenant}/sql"),
                json!({"query": "CREATE TABLE IF NOT EXISTS ledger (v TEXT PRIMARY KEY); SELECT v FROM ledger"}),
            )
            .await;
        assert_eq!(status, 200, "seed {seed} round {round}: {result}");
        let present: BTreeSet<String> = result["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap().to_string())
            .collect();
        for (value, outcome) in outcomes {
            match outcome {
                Outcome::Ok if !present.contains(value) => {
                    lost += 1;
                    eprintln!("seed {seed} round {round}: acknowledged insert {value} into {tenant} is missing");
                }
                Outcome::Failed if present.contains(value) => {
                    panic!(
                        "seed {seed} round {round}: failed insert {value} into {tenant} is present"
                    )
                }
                _ => {}
            }
        }
        for value in &present {
            assert!(
                outcomes.contains_key(value),
                "seed {seed} round {round}: {value} in {tenant} was never attempted"
            );
        }
    }
    for (counter, (ok, unknown)) in &ledger.increments {
        let value: u64 = host
            .get(&format!("/obj/Counter/{counter}/"))
            .await
            .body
            .parse()
            .unwrap();
        if value < *ok {
            lost += ok - value;
            eprintln!("seed {seed} round {round}: counter {counter} = {value} < {ok} acknowledged increments");
        }
        assert!(
            value <= ok + unknown,
            "seed {seed} round {round}: counter {counter} = {value} > {ok} ok + {unknown} unknown"
        );
    }
    for (room, outcomes) in &ledger.chats {
        let history = host
            .get(&format!("/obj/ChatRoom/{room}/history"))
            .await
            .json();
        let present: BTreeSet<String> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect();
        for (text, outcome) in outcomes {
            if *outcome == Outcome::Ok && !present.contains(text) {
                lost += 1;
                eprintln!("seed {seed} round {round}: chat message {text} was broadcast but is not in {room}'s history");
            }
        }
        for text in &present {
            assert!(
                outcomes.contains_key(text),
                "seed {seed} round {round}: {text} in {room} was never sent"
            );
        }
    }
    for (object, outcomes) in &ledger.joins {
        let body = host
            .get(&format!("/obj/Hostile/{object}/joined"))
            .await
            .body;
        let present: BTreeSet<String> = body.lines().map(str::to_string).collect();
        for (token, outcome) in outcomes {
            match outcome {
                Outcome::Ok if !present.contains(token) => {
                    lost += 1;
                    eprintln!("seed {seed} round {round}: join {token} got its 101 but is not recorded in {object}");
                }
                Outcome::Failed if present.contains(token) => {
                    panic!(
                        "seed {seed} round {round}: refused join {token} is recorded in {object}"
                    )
                }
                _ => {}
            }
        }
        for token in &present {
            assert!(
                outcomes.contains_key(token),
                "seed {seed} round {round}: join {token} in {object} was never attempted"
            );
        }
    }
    assert_eq!(
        lost, 0,
        "seed {seed} round {round}: {lost} acknowledged writes lost"
    );
    lost
}
