//! Durable alarms: timing, overwrite, delete, retries with backoff, giving up,
//! hibernation, restarts and crashes mid-handler.
//!
//! Most tests run the host in-process on virtual time (`TestHost::in_process`):
//! the test moves the clock, so an alarm fires exactly when it is due, a
//! retry exactly at its backoff, and "not yet" is exact too (the scheduler
//! never dispatches an alarm that is not due). The guests read the same
//! clock. Restarts and crashes use the binary, on real time.
//!
//! "Did not fire" is exact too: after moving the clock, the test waits until
//! the dispatcher has looked at the new time and every alarm it dispatched has
//! been delivered (`settle`), then checks.

use dohost_tests::{eventually, wait_for_line, TestHost};
use serde_json::{json, Value};
use std::time::Duration;

const FAST: &str = "[alarms]\nretry_base = \"100ms\"\nmax_retries = 3";
const WAIT: Duration = Duration::from_secs(30);

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Virtual now of an in-process host.
fn now(host: &TestHost) -> i64 {
    use dohost::clock::Clock;
    host.clock().now_ms()
}

/// (alarm, mode, runs) of a Hostile object.
async fn hostile_alarm(host: &TestHost, name: &str) -> (String, String, i64) {
    let body = host.get(&format!("/obj/Hostile/{name}/alarm")).await.body;
    let mut parts = body.splitn(3, ' ');
    let alarm = parts.next().unwrap_or_default().to_string();
    let mode = parts.next().unwrap_or_default().to_string();
    let runs = parts.next().unwrap_or("0").parse().unwrap_or(-1);
    (alarm, mode, runs)
}

async fn set_alarm(host: &TestHost, name: &str, in_ms: i64, mode: &str) {
    let reply = host
        .post(
            &format!("/obj/Hostile/{name}/alarm?in={in_ms}&mode={mode}"),
            "",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn runs(host: &TestHost, name: &str) -> i64 {
    hostile_alarm(host, name).await.2
}

async fn wait_runs(host: &TestHost, name: &str, n: i64) {
    eventually(WAIT, &format!("{name} ran {n} times"), || async {
        runs(host, name).await == n
    })
    .await;
}

/// The alarm time of a Hostile object (epoch ms); panics if it has none.
async fn alarm_time(host: &TestHost, name: &str) -> i64 {
    let (alarm, _, _) = hostile_alarm(host, name).await;
    alarm
        .strip_prefix("Some(")
        .and_then(|a| a.strip_suffix(')'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name} has no alarm: {alarm}"))
}

/// Moves virtual time to `at`.
fn advance_to(host: &TestHost, at: i64) {
    let delta = at - now(host);
    assert!(delta >= 0, "time does not go back ({delta} ms)");
    host.advance_ms(delta as u64);
}

/// The (retry, is_retry, at) entries the Hostile alarm handler logged.
async fn alarm_log(host: &TestHost, name: &str) -> Vec<(u32, bool, i64)> {
    let body = host
        .get(&format!("/obj/Hostile/{name}/get?key=alarm_log"))
        .await
        .body;
    if body == "none" {
        return Vec::new();
    }
    let list: Vec<String> = serde_json::from_str(&body).unwrap_or_default();
    list.iter()
        .map(|e| {
            let p: Vec<&str> = e.split(':').collect();
            (p[0].parse().unwrap(), p[1] == "true", p[2].parse().unwrap())
        })
        .collect()
}

/// Waits until every alarm due by now has been dispatched and delivered.
async fn settle(host: &TestHost) {
    let (alarms, t) = (&host.runtime().alarms, now(host));
    alarms.nudge();
    eventually(WAIT, "the alarm dispatcher caught up", || async {
        alarms.settled_at(t)
    })
    .await;
}

/// Lets `ms` of virtual time pass, and every alarm due in it run.
async fn pass(host: &TestHost, ms: i64) {
    host.advance_ms(ms as u64);
    settle(host).await;
}

fn metric(name: &str, outcome: &str) -> String {
    format!(r#"{name}{{class="Hostile",outcome="{outcome}"}}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batcher_alarm_fires_once_at_exactly_the_set_time_and_flushes() {
    let host = TestHost::in_process("").await;
    let t0 = now(&host);
    let (_, added) = host
        .post_json("/obj/Batcher/b/add?flush_ms=300", json!("one"))
        .await;
    assert_eq!(added["alarm"].as_i64(), Some(t0 + 300), "{added}");
    host.post("/obj/Batcher/b/add?flush_ms=5000", "two").await;
    let (_, status) = host.post_json("/obj/Batcher/b/add", json!("three")).await;
    assert_eq!(
        status["alarm"].as_i64(),
        Some(t0 + 300),
        "an existing alarm is kept"
    );
    // Not a millisecond early…
    pass(&host, 299).await;
    assert_eq!(host.get("/obj/Batcher/b/").await.json()["flushed"], 0);
    // … and at the time.
    host.advance_ms(1);
    eventually(WAIT, "the batch is flushed", || async {
        host.get("/obj/Batcher/b/").await.json()["flushed"] == 3
    })
    .await;
    let state = host.get("/obj/Batcher/b/").await.json();
    assert_eq!(
        state,
        json!({"pending": 0, "flushed": 3, "alarm": null, "runs": [{"retryCount": 0, "isRetry": false, "ok": true}]})
    );
    // The handler runs at the set time and sees no alarm inside it.
    set_alarm(&host, "timed", 400, "ok").await;
    let at = alarm_time(&host, "timed").await;
    assert_eq!(at, now(&host) + 400);
    host.advance_ms(400);
    wait_runs(&host, "timed", 1).await;
    let log = alarm_log(&host, "timed").await;
    assert_eq!(log, vec![(0, false, at)], "one run, at exactly {at}");
    assert_eq!(
        host.get("/obj/Hostile/timed/get?key=alarm_inside")
            .await
            .body,
        "None",
        "no alarm inside its handler"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overwriting_and_deleting_an_alarm() {
    let host = TestHost::in_process("").await;
    set_alarm(&host, "over", 200, "ok").await;
    set_alarm(&host, "over", 600, "ok").await;
    let second = alarm_time(&host, "over").await;
    assert_eq!(second, now(&host) + 600);
    set_alarm(&host, "gone", 200, "ok").await;
    assert_eq!(
        host.post("/obj/Hostile/gone/alarm-delete", "").await.body,
        "deleted"
    );
    assert_eq!(hostile_alarm(&host, "gone").await.0, "None");
    // At the first time: neither the overwritten nor the deleted one fires.
    pass(&host, 200).await;
    assert_eq!(runs(&host, "over").await, 0, "the earlier time is gone");
    assert_eq!(runs(&host, "gone").await, 0, "a deleted alarm never fires");
    // At the second: the overwritten one fires once, the deleted one never.
    advance_to(&host, second);
    wait_runs(&host, "over", 1).await;
    assert_eq!(alarm_log(&host, "over").await[0].2, second);
    pass(&host, 10_000).await;
    assert_eq!(runs(&host, "over").await, 1, "one run");
    assert_eq!(runs(&host, "gone").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_in_the_past_fires_at_once() {
    let host = TestHost::in_process("").await;
    set_alarm(&host, "late", -60_000, "ok").await;
    // No time passes: it is due already.
    wait_runs(&host, "late", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batcher_retries_until_it_succeeds_then_the_alarm_is_cleared() {
    let host = TestHost::in_process("").await;
    host.post("/obj/Batcher/r/fail?times=2", "").await;
    host.post("/obj/Batcher/r/add?flush_ms=0", "item").await;
    for attempt in 1..=3usize {
        eventually(WAIT, &format!("attempt {attempt}"), || async {
            host.get("/obj/Batcher/r/").await.json()["runs"]
                .as_array()
                .unwrap()
                .len()
                == attempt
        })
        .await;
        if let Some(next) = host.get("/obj/Batcher/r/").await.json()["alarm"].as_i64() {
            advance_to(&host, next);
        }
    }
    let state = host.get("/obj/Batcher/r/").await.json();
    assert_eq!(
        state["runs"],
        json!([
            {"retryCount": 0, "isRetry": false, "ok": false},
            {"retryCount": 1, "isRetry": true, "ok": false},
            {"retryCount": 2, "isRetry": true, "ok": true},
        ])
    );
    assert_eq!(state["flushed"], 1);
    assert_eq!(state["alarm"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_retried_at_the_default_backoff_then_given_up() {
    // The default policy: 2 s, doubling, ±25 %, 6 retries — 2 minutes of
    // backoff that take no time here.
    let host = TestHost::in_process("").await;
    set_alarm(&host, "flaky", 0, "fail").await;
    wait_runs(&host, "flaky", 1).await;
    let mut last = now(&host);
    for retry in 0..6u32 {
        let at = alarm_time(&host, "flaky").await;
        let delay = 2_000i64 << retry;
        let gap = at - last;
        assert!(
            gap >= delay * 3 / 4 && gap <= delay * 5 / 4,
            "retry {}: {gap} ms after the failure, for {delay} ms ±25 %",
            retry + 1
        );
        advance_to(&host, at - 1);
        settle(&host).await;
        assert_eq!(
            runs(&host, "flaky").await,
            i64::from(retry) + 1,
            "not early"
        );
        host.advance_ms(1);
        wait_runs(&host, "flaky", i64::from(retry) + 2).await;
        last = at;
    }
    let log = alarm_log(&host, "flaky").await;
    let tries: Vec<(u32, bool)> = log.iter().map(|(r, i, _)| (*r, *i)).collect();
    assert_eq!(tries, (0..=6).map(|r| (r, r > 0)).collect::<Vec<_>>());
    // Given up: no alarm left, no more runs.
    assert_eq!(hostile_alarm(&host, "flaky").await.0, "None");
    pass(&host, 3_600_000).await;
    assert_eq!(runs(&host, "flaky").await, 7);
    let m = host.metrics().await;
    assert_eq!(m.get(&metric("dohost_alarms_total", "failed")), 1.0);
    assert_eq!(m.get(&metric("dohost_alarms_total", "retried")), 6.0);
    assert_eq!(m.get(&metric("dohost_alarms_total", "fired")), 7.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_handler_is_retried_and_its_writes_roll_back() {
    let host = TestHost::in_process(FAST).await;
    set_alarm(&host, "trap", 0, "trap").await;
    let trapped = r#"dohost_events_total{class="Hostile",kind="alarm",outcome="guest_failure"}"#;
    // The first run and max_retries (3) retries all trap; each trapped run
    // still records its retry (outside the rolled-back event).
    for attempt in 1..=4 {
        eventually(WAIT, &format!("trapped run {attempt}"), || async {
            host.metrics().await.get_or_zero(trapped) == f64::from(attempt)
        })
        .await;
        if attempt < 4 {
            let at = alarm_time(&host, "trap").await;
            advance_to(&host, at);
        }
    }
    eventually(WAIT, "the alarm is given up", || async {
        host.metrics()
            .await
            .get_or_zero(&metric("dohost_alarms_total", "failed"))
            == 1.0
    })
    .await;
    let m = host.metrics().await;
    assert_eq!(m.get(trapped), 4.0);
    assert_eq!(m.get(&metric("dohost_alarms_total", "fired")), 4.0);
    assert_eq!(m.get(&metric("dohost_alarms_total", "retried")), 3.0);
    assert_eq!(
        runs(&host, "trap").await,
        0,
        "every trapped run was rolled back"
    );
    assert_eq!(hostile_alarm(&host, "trap").await.0, "None");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_fails_but_sets_a_new_alarm_keeps_the_new_one() {
    let host = TestHost::in_process("").await;
    set_alarm(&host, "resched", 0, "fail-then-set").await;
    wait_runs(&host, "resched", 1).await;
    assert_eq!(
        alarm_time(&host, "resched").await,
        now(&host) + 60_000,
        "the new alarm (a minute ahead) stands, not a retry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_or_replacing_between_retries_cancels_them() {
    let host = TestHost::in_process(FAST).await;
    host.post("/obj/Batcher/d/fail?times=5", "").await;
    host.post("/obj/Batcher/d/add?flush_ms=0", "x").await;
    eventually(WAIT, "the first run failed", || async {
        !host.get("/obj/Batcher/d/").await.json()["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    host.request(reqwest::Method::DELETE, "/obj/Batcher/d/alarm", "")
        .await;
    // Long past every retry of the policy (100 ms … 1 s).
    pass(&host, 10_000).await;
    let state = host.get("/obj/Batcher/d/").await.json();
    assert_eq!(
        state["runs"].as_array().unwrap().len(),
        1,
        "no retry after delete"
    );
    assert_eq!(state["alarm"], Value::Null);

    set_alarm(&host, "swap", 0, "fail").await;
    wait_runs(&host, "swap", 1).await;
    set_alarm(&host, "swap", 60_000, "ok").await; // replaces the pending retry
    pass(&host, 10_000).await;
    assert_eq!(
        runs(&host, "swap").await,
        1,
        "the pending retry was replaced"
    );
    pass(&host, 50_000).await;
    wait_runs(&host, "swap", 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_all_deletes_the_alarm() {
    let host = TestHost::in_process("").await;
    set_alarm(&host, "wiped", 300, "ok").await;
    assert_eq!(
        host.post("/obj/Hostile/wiped/delete-all", "").await.body,
        "gone"
    );
    let id = dohost_tests::id_of("Hostile", "wiped");
    let listed = host.get("/_dohost/alarms").await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id.as_str()),
        "{listed}"
    );
    pass(&host, 300).await;
    assert_eq!(runs(&host, "wiped").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_traps_after_setting_an_alarm_leaves_no_alarm() {
    let host = TestHost::in_process("").await;
    assert_eq!(
        host.post("/obj/Hostile/undo/set-alarm-then-panic", "")
            .await
            .status,
        500
    );
    assert_eq!(hostile_alarm(&host, "undo").await.0, "None");
    pass(&host, 3_600_000).await;
    assert_eq!(runs(&host, "undo").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_periodic_alarm_keeps_running() {
    let host = TestHost::in_process("").await;
    set_alarm(&host, "tick", 0, "periodic:4").await;
    for tick in 1..=4 {
        wait_runs(&host, "tick", tick).await;
        if tick < 4 {
            // Each tick sets the next one 50 ms ahead.
            let at = alarm_time(&host, "tick").await;
            assert_eq!(at, now(&host) + 50);
            advance_to(&host, at);
        }
    }
    assert_eq!(hostile_alarm(&host, "tick").await.0, "None");
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_wake_hibernated_objects_which_then_hibernate_again() {
    let host = TestHost::in_process("[limits]\nhibernate_after = \"10s\"").await;
    let active = || async { host.metrics().await.get("dohost_instances_active") };
    set_alarm(&host, "sleeper", 60_000, "ok").await;
    assert_eq!(active().await, 1.0);
    pass(&host, 9_999).await;
    assert_eq!(active().await, 1.0, "not idle long enough yet");
    host.advance_ms(1);
    eventually(WAIT, "the object hibernates", || async {
        active().await == 0.0
    })
    .await;
    let instantiations = r#"dohost_instantiations_total{class="Hostile"}"#;
    let before = host.metrics().await.get(instantiations);
    // Due while hibernated: the alarm wakes it (a new instance) and runs.
    advance_to(&host, alarm_time_from_index(&host).await);
    wait_runs(&host, "sleeper", 1).await;
    let m = host.metrics().await;
    assert_eq!(m.get(&metric("dohost_alarms_total", "fired")), 1.0);
    assert!(m.get(instantiations) > before, "the alarm woke it");
    host.advance_ms(10_000);
    eventually(WAIT, "and it hibernates again", || async {
        active().await == 0.0
    })
    .await;
}

/// The one alarm in the host's index (`GET /_dohost/alarms`), without
/// waking its object.
async fn alarm_time_from_index(host: &TestHost) -> i64 {
    let listed = host.get("/_dohost/alarms").await.json();
    let alarms = listed.as_array().unwrap();
    assert_eq!(alarms.len(), 1, "{listed}");
    alarms[0]["at"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_survive_a_host_restart() {
    let mut host = TestHost::start(FAST).await;
    set_alarm(&host, "durable", 800, "ok").await;
    let due = alarm_time(&host, "durable").await;
    let listed = host.get("/_dohost/alarms").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    host.kill().await;
    // Stay down past the due time: the scenario itself is a host that was away.
    tokio::time::sleep(Duration::from_millis((due - wall_ms()).max(0) as u64 + 200)).await;
    host.restart().await;
    eventually(WAIT, "the alarm ran after the restart", || async {
        runs(&host, "durable").await == 1
    })
    .await;
    eventually(WAIT, "the index is empty", || async {
        host.get("/_dohost/alarms").await.json() == json!([])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_the_handler_makes_the_alarm_fire_again() {
    let mut host = TestHost::start(FAST).await;
    let mut log = host.log_lines();
    set_alarm(&host, "crash", 0, "slow:1500").await;
    wait_for_line(&mut log, "hostile alarm started").await;
    host.kill().await; // SIGKILL mid-handler: nothing of the run is committed
    host.restart().await;
    eventually(WAIT, "the alarm ran again to completion", || async {
        runs(&host, "crash").await == 1
    })
    .await;
    let log = alarm_log(&host, "crash").await;
    assert_eq!(log.len(), 1, "only the completed run is recorded: {log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dohost_alarms_lists_the_scheduled_alarms() {
    let host = TestHost::in_process("").await;
    set_alarm(&host, "listed", 3_600_000, "ok").await;
    let out = tokio::process::Command::new(dohost_tests::dohost_bin())
        .args(["alarms", "--url", &host.url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let id = dohost_tests::id_of("Hostile", "listed");
    assert!(text.contains("Hostile") && text.contains(&id), "{text}");
}
