//! kill -9 with an acknowledged-write ledger over HTTP, RPC and WebSocket
//! traffic (short version; `make torture` runs 100+ rounds). Set
//! `TORTURE_SEED` to replay a failure.

use dohost_tests::{ledger, TestHost};

#[tokio::test(flavor = "multi_thread")]
async fn no_acknowledged_write_is_lost_when_the_host_is_killed() {
    let rounds: u64 = std::env::var("TORTURE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("torture seed {seed} ({rounds} rounds); replay with TORTURE_SEED={seed}");
    let mut host = TestHost::start("").await;
    let totals = ledger::run(&mut host, seed, rounds).await;
    println!(
        "torture: seed {seed}, rounds {}, writes acknowledged {} (chat messages {}, joins {}), unknown {}, failed {}, lost {}",
        totals.rounds,
        totals.acknowledged,
        totals.chats_acknowledged,
        totals.joins_acknowledged,
        totals.unknown,
        totals.failed,
        totals.lost
    );
    assert_eq!(totals.lost, 0);
    assert!(totals.acknowledged > 0, "the clients got writes through");
    assert!(
        totals.chats_acknowledged > 0 && totals.joins_acknowledged > 0,
        "WebSocket traffic got through too: {totals:?}"
    );
}
