//! Durable alarms: timing, overwrite, delete, retries with backoff, giving up,
//! hibernation, restarts and crashes mid-handler.
//!
//! "Did not fire" is checked against a control alarm set later on another
//! object: once the control has run, the earlier one would have too.

use dohost_tests::{eventually, wait_for_line, TestHost};
use serde_json::{json, Value};
use std::time::Duration;

const FAST: &str = "[alarms]\nretry_base = \"100ms\"\nmax_retries = 3";
const WAIT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
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

/// The alarm time of a Hostile object (epoch ms); panics if it has none.
async fn alarm_time(host: &TestHost, name: &str) -> i64 {
    let (alarm, _, _) = hostile_alarm(host, name).await;
    alarm
        .strip_prefix("Some(")
        .and_then(|a| a.strip_suffix(')'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name} has no alarm: {alarm}"))
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

/// Sets a control alarm `in_ms` ahead on a fresh object and waits until it ran.
async fn control_alarm_passes(host: &TestHost, in_ms: i64) {
    let name = format!("control-{}", now_ms());
    set_alarm(host, &name, in_ms, "ok").await;
    eventually(WAIT, "the control alarm ran", || async {
        runs(host, &name).await == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batcher_alarm_fires_once_at_about_the_set_time_and_flushes() {
    let host = TestHost::start(FAST).await;
    let before = now_ms();
    let (_, added) = host
        .post_json("/obj/Batcher/b/add?flush_ms=300", json!("one"))
        .await;
    let alarm = added["alarm"].as_i64().unwrap();
    assert!(alarm >= before + 300 && alarm <= now_ms() + 300, "{added}");
    host.post("/obj/Batcher/b/add?flush_ms=5000", "two").await;
    let (_, status) = host.post_json("/obj/Batcher/b/add", json!("three")).await;
    assert_eq!(
        status["alarm"].as_i64(),
        Some(alarm),
        "an existing alarm is kept"
    );
    eventually(WAIT, "the batch is flushed", || async {
        host.get("/obj/Batcher/b/").await.json()["flushed"] == 3
    })
    .await;
    let state = host.get("/obj/Batcher/b/").await.json();
    assert_eq!(
        state,
        json!({"pending": 0, "flushed": 3, "alarm": null, "runs": [{"retryCount": 0, "isRetry": false, "ok": true}]})
    );
    // It ran at (not before) the set time.
    let before = now_ms();
    set_alarm(&host, "timed", 400, "ok").await;
    let after = now_ms();
    let at = alarm_time(&host, "timed").await;
    assert!((before + 400..=after + 400).contains(&at), "{at}");
    eventually(WAIT, "the alarm ran", || async {
        runs(&host, "timed").await == 1
    })
    .await;
    let log = alarm_log(&host, "timed").await;
    assert_eq!(log.len(), 1);
    assert!(log[0].2 >= at, "fired at {}, before {at}", log[0].2);
    assert!(log[0].2 < at + 2000, "fired {} ms late", log[0].2 - at);
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
    let host = TestHost::start(FAST).await;
    set_alarm(&host, "over", 200, "ok").await;
    let first = alarm_time(&host, "over").await;
    set_alarm(&host, "over", 600, "ok").await;
    let second = alarm_time(&host, "over").await;
    assert!(second >= first + 400, "{first} then {second}");
    set_alarm(&host, "gone", 200, "ok").await;
    assert_eq!(
        host.post("/obj/Hostile/gone/alarm-delete", "").await.body,
        "deleted"
    );
    assert_eq!(hostile_alarm(&host, "gone").await.0, "None");
    control_alarm_passes(&host, 900).await;
    assert_eq!(
        runs(&host, "over").await,
        1,
        "one run for the overwritten alarm"
    );
    assert!(
        alarm_log(&host, "over").await[0].2 >= second,
        "the later time stands"
    );
    assert_eq!(runs(&host, "gone").await, 0, "a deleted alarm never fires");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_in_the_past_fires_as_soon_as_possible() {
    let host = TestHost::start(FAST).await;
    set_alarm(&host, "late", -60_000, "ok").await;
    eventually(WAIT, "the alarm ran", || async {
        runs(&host, "late").await == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_retried_with_growing_delays_then_success_clears_the_alarm() {
    let host = TestHost::start(FAST).await;
    host.post("/obj/Batcher/r/fail?times=2", "").await;
    host.post("/obj/Batcher/r/add?flush_ms=0", "item").await;
    eventually(WAIT, "the third run succeeds", || async {
        host.get("/obj/Batcher/r/").await.json()["flushed"] == 1
    })
    .await;
    let state = host.get("/obj/Batcher/r/").await.json();
    assert_eq!(
        state["runs"],
        json!([
            {"retryCount": 0, "isRetry": false, "ok": false},
            {"retryCount": 1, "isRetry": true, "ok": false},
            {"retryCount": 2, "isRetry": true, "ok": true},
        ])
    );
    assert_eq!(state["alarm"], Value::Null);

    // Delays grow: ~100 ms, ~200 ms, ~400 ms (±25 %).
    set_alarm(&host, "flaky", 0, "fail").await;
    eventually(WAIT, "all attempts ran", || async {
        runs(&host, "flaky").await == 4
    })
    .await;
    let log = alarm_log(&host, "flaky").await;
    let tries: Vec<(u32, bool)> = log.iter().map(|(r, i, _)| (*r, *i)).collect();
    assert_eq!(tries, vec![(0, false), (1, true), (2, true), (3, true)]);
    // Each gap on its own: at least the shortest delay its retry may have
    // (base · 2^n · 0.75: a retry never comes early), at most the longest
    // (· 1.25) plus time to run and deliver it.
    let gaps: Vec<i64> = log.windows(2).map(|w| w[1].2 - w[0].2).collect();
    for (n, gap) in gaps.iter().enumerate() {
        let delay = 100 << n;
        assert!(
            *gap >= delay * 3 / 4 && *gap <= delay * 5 / 4 + 300,
            "retry {}: gap {gap} ms for a delay of {delay} ms ±25 % (gaps {gaps:?})",
            n + 1
        );
    }
    // Then it gives up: no alarm left, no more runs.
    eventually(WAIT, "the alarm is dropped", || async {
        hostile_alarm(&host, "flaky").await.0 == "None"
    })
    .await;
    control_alarm_passes(&host, 800).await;
    assert_eq!(runs(&host, "flaky").await, 4);
    let m = host.metrics().await;
    assert_eq!(
        m.get(r#"dohost_alarms_total{class="Hostile",outcome="failed"}"#),
        1.0
    );
    assert!(m.get(r#"dohost_alarms_total{class="Hostile",outcome="retried"}"#) >= 3.0);
    assert!(m.get(r#"dohost_alarms_total{class="Hostile",outcome="fired"}"#) >= 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_handler_is_retried_and_its_writes_roll_back() {
    let host = TestHost::start(FAST).await;
    let mut log = host.log_lines();
    set_alarm(&host, "trap", 0, "trap").await;
    eventually(WAIT, "the retries are used up", || async {
        let m = host.metrics().await;
        m.get_or_zero(r#"dohost_alarms_total{class="Hostile",outcome="failed"}"#) == 1.0
    })
    .await;
    // The first run and max_retries (3) retries all ran, and all trapped.
    wait_for_line(&mut log, "alarm failed 4 times; giving up").await;
    let trapped = r#"dohost_events_total{class="Hostile",kind="alarm",outcome="guest_failure"}"#;
    eventually(WAIT, "the last trapped run is counted", || async {
        host.metrics().await.get_or_zero(trapped) >= 4.0
    })
    .await;
    let m = host.metrics().await;
    assert_eq!(m.get(trapped), 4.0);
    assert_eq!(
        m.get(r#"dohost_alarms_total{class="Hostile",outcome="fired"}"#),
        4.0
    );
    assert_eq!(
        m.get(r#"dohost_alarms_total{class="Hostile",outcome="retried"}"#),
        3.0
    );
    assert_eq!(
        runs(&host, "trap").await,
        0,
        "every trapped run was rolled back"
    );
    assert_eq!(hostile_alarm(&host, "trap").await.0, "None");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_fails_but_sets_a_new_alarm_keeps_the_new_one() {
    let host = TestHost::start(FAST).await;
    set_alarm(&host, "resched", 0, "fail-then-set").await;
    eventually(WAIT, "the handler ran", || async {
        runs(&host, "resched").await == 1
    })
    .await;
    let (alarm, _, _) = hostile_alarm(&host, "resched").await;
    let at: i64 = alarm
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert!(
        at > now_ms() + 50_000,
        "the new alarm (a minute ahead) stands, not a retry: {alarm}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_or_replacing_between_retries_cancels_them() {
    let host = TestHost::start(FAST).await;
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
    let runs_then = host.get("/obj/Batcher/d/").await.json()["runs"]
        .as_array()
        .unwrap()
        .len();
    control_alarm_passes(&host, 1000).await;
    let state = host.get("/obj/Batcher/d/").await.json();
    assert_eq!(
        state["runs"].as_array().unwrap().len(),
        runs_then,
        "no retry after delete"
    );
    assert_eq!(state["alarm"], Value::Null);

    set_alarm(&host, "swap", 0, "fail").await;
    eventually(WAIT, "the first attempt failed", || async {
        runs(&host, "swap").await >= 1
    })
    .await;
    set_alarm(&host, "swap", 60_000, "ok").await; // replaces the pending retry
    let before = runs(&host, "swap").await;
    control_alarm_passes(&host, 1000).await;
    assert_eq!(
        runs(&host, "swap").await,
        before,
        "the pending retry was replaced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_all_deletes_the_alarm() {
    let host = TestHost::start(FAST).await;
    set_alarm(&host, "wiped", 300, "ok").await;
    assert_eq!(
        host.post("/obj/Hostile/wiped/delete-all", "").await.body,
        "gone"
    );
    let id = host
        .get("/obj/Hostile/wiped/identity")
        .await
        .body
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    let listed = host.get("/_dohost/alarms").await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id.as_str()),
        "{listed}"
    );
    control_alarm_passes(&host, 700).await;
    assert_eq!(runs(&host, "wiped").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_traps_after_setting_an_alarm_leaves_no_alarm() {
    let host = TestHost::start(FAST).await;
    assert_eq!(
        host.post("/obj/Hostile/undo/set-alarm-then-panic", "")
            .await
            .status,
        500
    );
    assert_eq!(hostile_alarm(&host, "undo").await.0, "None");
    control_alarm_passes(&host, 500).await;
    assert_eq!(runs(&host, "undo").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_periodic_alarm_keeps_running() {
    let host = TestHost::start(FAST).await;
    set_alarm(&host, "tick", 0, "periodic:4").await;
    eventually(WAIT, "four ticks", || async {
        runs(&host, "tick").await == 4
    })
    .await;
    eventually(WAIT, "no alarm after the last tick", || async {
        hostile_alarm(&host, "tick").await.0 == "None"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alarms_wake_hibernated_objects_which_then_hibernate_again() {
    let host = TestHost::start(&format!("{FAST}\n[limits]\nhibernate_after = \"200ms\"")).await;
    set_alarm(&host, "sleeper", 1200, "ok").await;
    eventually(WAIT, "the object hibernates", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
    assert_eq!(
        runs(&host, "sleeper").await,
        0,
        "(reading it woke it up; that is fine)"
    );
    eventually(WAIT, "hibernated again", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
    let instantiations = host
        .metrics()
        .await
        .get(r#"dohost_instantiations_total{class="Hostile"}"#);
    eventually(WAIT, "the alarm ran", || async {
        host.metrics()
            .await
            .get_or_zero(r#"dohost_alarms_total{class="Hostile",outcome="fired"}"#)
            == 1.0
    })
    .await;
    assert!(
        host.metrics()
            .await
            .get(r#"dohost_instantiations_total{class="Hostile"}"#)
            > instantiations,
        "the alarm woke it"
    );
    eventually(WAIT, "and it hibernates again", || async {
        host.metrics().await.get("dohost_instances_active") == 0.0
    })
    .await;
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
    tokio::time::sleep(Duration::from_millis((due - now_ms()).max(0) as u64 + 200)).await;
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
    let host = TestHost::start(FAST).await;
    set_alarm(&host, "listed", 3_600_000, "ok").await;
    let out = tokio::process::Command::new(dohost_tests::dohost_bin())
        .args(["alarms", "--url", &host.url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let id = host
        .get("/obj/Hostile/listed/identity")
        .await
        .body
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    assert!(text.contains("Hostile") && text.contains(&id), "{text}");
}
