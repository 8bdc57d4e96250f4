//! Test harness: starts the real `dohost` binary on a free loopback port with a
//! temporary data dir and the guest components built from `examples/` and
//! `tests/fixtures/`, and talks to it over real HTTP.
//!
//! Build first (`make build`, or `make test` which does it): the harness uses
//! `target/release/dohost` (or `$DOHOST_BIN`) and `target/wasm32-wasip2/guest/*.wasm`.

pub mod in_process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The `dohost` binary under test.
pub fn dohost_bin() -> PathBuf {
    let bin = std::env::var_os("DOHOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/dohost"));
    assert!(
        bin.is_file(),
        "{} is missing: run `make build` first",
        bin.display()
    );
    bin
}

/// A host serving only the JavaScript SDK probe (`JsSdkProbe`) with
/// `hibernate_after = "0s"`: an object hibernates after every batch unless
/// something (a pending timer, an `accept()`ed socket) keeps it awake.
pub async fn js_probe_hibernating_host() -> TestHost {
    let classes = vec![("JsSdkProbe", polyglot("js_sdk_probe"))];
    TestHost::start_with(&classes, "[limits]\nhibernate_after = \"0s\"").await
}

/// The KV value `key` of the JS SDK probe `name` (its `GET /get`), or "none".
pub async fn js_probe_kv(host: &TestHost, name: &str, key: &str) -> String {
    host.get(&format!("/obj/JsSdkProbe/{name}/get?key={key}"))
        .await
        .body
}

/// Runs `dohost build --project dir` (a Cloudflare-style project).
pub fn dohost_build(dir: &Path) -> std::process::Output {
    std::process::Command::new(dohost_bin())
        .args(["build", "--project"])
        .arg(dir)
        .output()
        .expect("run dohost build")
}

/// Builds the project in `dir` (which must succeed; returns the build's
/// stderr) and serves what it built, `<dir>/.dohost/dohost.toml`.
pub async fn build_and_serve(dir: &Path) -> (String, TestHost) {
    let built = dohost_build(dir);
    let stderr = String::from_utf8_lossy(&built.stderr).into_owned();
    assert!(built.status.success(), "{stderr}");
    let host = TestHost::launch_with(Launch {
        manifest: Some(dir.join(".dohost/dohost.toml")),
        ..Launch::default()
    })
    .await;
    (stderr, host)
}

/// A copy of the project at `from` (without its `.dohost` build output) in a
/// new temporary dir: a build must work outside this checkout.
pub fn copy_project(from: &Path) -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                if entry.file_name() != ".dohost" {
                    copy_dir(&entry.path(), &target);
                }
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(from, dir.path());
    dir
}

/// A guest component built by `make build` (crate name with `-` as `_`).
pub fn guest(crate_name: &str) -> PathBuf {
    let path = root().join(format!(
        "target/wasm32-wasip2/guest/{}.wasm",
        crate_name.replace('-', "_")
    ));
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first",
        path.display()
    );
    path
}

/// The classes every test host serves.
pub fn standard_classes() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("Counter", guest("counter")),
        ("TenantDb", guest("tenant-db")),
        ("ChatRoom", guest("chat")),
        ("Batcher", guest("batcher")),
        ("Player", guest("leaderboard-player")),
        ("Leaderboard", guest("leaderboard-board")),
        ("Hostile", guest("hostile")),
        ("Types", guest("types-fixture")),
    ]
}

/// A JavaScript or Python component built by `make build` into target/polyglot/.
pub fn polyglot(file: &str) -> PathBuf {
    let path = root().join(format!("target/polyglot/{file}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first",
        path.display()
    );
    path
}

/// The same contracts in three languages.
pub fn polyglot_classes() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("Counter", guest("counter")),
        ("JsCounter", polyglot("js_counter")),
        ("PyCounter", polyglot("py_counter")),
        ("ChatRoom", guest("chat")),
        ("JsChatRoom", polyglot("js_chat")),
        ("PyChatRoom", polyglot("py_chat")),
    ]
}

/// A manifest for `classes` with extra top-level TOML (e.g. a `[limits]` table).
pub fn manifest(classes: &[(&str, PathBuf)], extra: &str) -> String {
    let mut m = String::new();
    if !extra.contains("cache_dir =") {
        m.push_str(&format!(
            "cache_dir = {:?}\n",
            root().join("target/dohost-test-cache")
        ));
    }
    // Error bodies with the guest's output: tests read panic messages.
    if !extra.contains("dev =") {
        m.push_str("dev = true\n");
    }
    m.push_str(extra);
    m.push('\n');
    for (name, path) in classes {
        m.push_str(&format!("[classes.{name}]\ncomponent = {:?}\n", path));
    }
    let names: Vec<String> = classes.iter().map(|(n, _)| format!("{n:?}")).collect();
    m.push_str(&format!(
        "[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [{}]\n",
        names.join(", ")
    ));
    m
}

/// How to start a host beyond the defaults (see [`TestHost::launch_with`]).
#[derive(Clone)]
pub struct Launch {
    pub classes: Vec<(&'static str, PathBuf)>,
    /// Extra top-level manifest TOML.
    pub extra: String,
    pub env: Vec<(String, String)>,
    /// Extra `dohost serve` arguments.
    pub args: Vec<String>,
    pub listen: String,
    /// The soft and hard `RLIMIT_NOFILE` of the host process.
    pub nofile: Option<u64>,
    /// Run the failpoint build.
    pub failpoints: bool,
    /// Serve this data dir instead of the host's own.
    pub data_dir: Option<PathBuf>,
    /// Serve this manifest instead of one made of `classes` and `extra`.
    pub manifest: Option<PathBuf>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            classes: standard_classes(),
            extra: String::new(),
            env: Vec::new(),
            args: Vec::new(),
            listen: "127.0.0.1:0".into(),
            nofile: None,
            failpoints: false,
            manifest: None,
            data_dir: None,
        }
    }
}

/// Sends `head` (an HTTP request head, without the host header) on a new
/// connection and returns what the host answers before the body (which is
/// never sent): for limits checked on the declared length.
pub async fn raw_request(host: &TestHost, head: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let addr = host.url.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (first, rest) = head.split_once("\r\n").expect("a request line");
    let request = format!("{first}\r\nhost: {addr}\r\n{rest}");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .expect("no answer without the body")
        .expect("read");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// The id of the object `name` of `class`, as the host derives it.
pub fn id_of(class: &str, name: &str) -> String {
    dohost::id::ObjectId::from_name(class, name).to_string()
}

/// Log lines kept from the start of a host (startup lines come before any
/// subscriber exists).
const LOG_HISTORY: usize = 20_000;

/// A running `dohost serve`.
pub struct TestHost {
    child: Option<Child>,
    /// The binary, environment, arguments and limits of the next launch.
    bin: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    listen: String,
    nofile: Option<u64>,
    data_dir_override: Option<PathBuf>,
    manifest_override: Option<PathBuf>,
    /// Lines the host writes to stderr (its log), for `wait_for_log`.
    log: tokio::sync::broadcast::Sender<String>,
    /// The first `LOG_HISTORY` lines of the host's log.
    history: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    /// Set for a host running inside the test process (`in_process`).
    in_process: Option<in_process::InProcess>,
}

/// An HTTP reply: status, body text and headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The `error-kind` header the Hostile fixture sets on an SDK error (the
    /// typed WIT error as the guest saw it), or "" without one.
    pub fn error_kind(&self) -> &str {
        self.headers
            .get("error-kind")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl TestHost {
    /// Starts a host with the standard classes and `extra` manifest TOML.
    pub async fn start(extra: &str) -> TestHost {
        Self::start_with(&standard_classes(), extra).await
    }

    pub async fn start_with(classes: &[(&str, PathBuf)], extra: &str) -> TestHost {
        Self::start_env(classes, extra, dohost_bin(), Vec::new()).await
    }

    /// Starts the failpoint build (`dohost-failpoints`) with extra environment
    /// (e.g. `DOHOST_POWERLOSS`) from the very first start.
    pub async fn start_failpoints(extra: &str, env: &[(&str, &str)]) -> TestHost {
        let bin = root().join("target/release/dohost-failpoints");
        assert!(
            bin.is_file(),
            "{} is missing: run `make build` first",
            bin.display()
        );
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start_env(&standard_classes(), extra, bin, env).await
    }

    /// Starts a host as `launch` says.
    pub async fn launch_with(launch: Launch) -> TestHost {
        let bin = if launch.failpoints {
            root().join("target/release/dohost-failpoints")
        } else {
            dohost_bin()
        };
        let mut host = Self::prepare(&launch.classes, &launch.extra, bin, launch.env);
        host.args = launch.args;
        host.listen = launch.listen;
        host.nofile = launch.nofile;
        host.data_dir_override = launch.data_dir;
        host.manifest_override = launch.manifest;
        host.launch().await;
        host
    }

    /// Starts `dohost serve` as `launch` says and expects it to stop at once
    /// with an error; returns its exit code and stderr.
    pub async fn launch_failing(launch: Launch) -> (Option<i32>, String) {
        let mut host = Self::prepare(&launch.classes, &launch.extra, dohost_bin(), launch.env);
        host.args = launch.args;
        host.listen = launch.listen;
        host.data_dir_override = launch.data_dir;
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            host.command().kill_on_drop(true).output(),
        )
        .await
        .expect("the host did not stop")
        .expect("spawn dohost");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The first lines of the host's log (up to `LOG_HISTORY`), joined.
    pub fn log_text(&self) -> String {
        self.history.lock().unwrap().join("\n")
    }

    /// A line of the host's log containing `needle`, waiting for it if it
    /// has not been written yet.
    pub async fn log_containing(&self, needle: &str) -> String {
        let mut lines = self.log_lines();
        if let Some(line) = self
            .history
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
        {
            return line.clone();
        }
        wait_for_line(&mut lines, needle).await
    }

    async fn start_env(
        classes: &[(&str, PathBuf)],
        extra: &str,
        bin: PathBuf,
        env: Vec<(String, String)>,
    ) -> TestHost {
        let mut host = Self::prepare(classes, extra, bin, env);
        host.launch().await;
        host
    }

    fn prepare(
        classes: &[(&str, PathBuf)],
        extra: &str,
        bin: PathBuf,
        env: Vec<(String, String)>,
    ) -> TestHost {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("dohost.toml"), manifest(classes, extra))
            .expect("write manifest");
        TestHost {
            child: None,
            bin,
            env,
            args: Vec::new(),
            listen: "127.0.0.1:0".into(),
            nofile: None,
            data_dir_override: None,
            manifest_override: None,
            log: tokio::sync::broadcast::channel(1024).0,
            history: Default::default(),
            url: String::new(),
            dir,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            in_process: None,
        }
    }

    /// Starts the runtime inside the test process on virtual time, with the
    /// standard classes and `extra` manifest TOML (see `in_process`).
    pub async fn in_process(extra: &str) -> TestHost {
        Self::in_process_with(&standard_classes(), extra).await
    }

    /// The same, with `classes`.
    pub async fn in_process_with(classes: &[(&str, PathBuf)], extra: &str) -> TestHost {
        let mut host = Self::prepare(classes, extra, dohost_bin(), Vec::new());
        let data_dir = in_process::fresh_data_dir();
        host.data_dir_override = Some(data_dir.clone());
        let (url, parts) = in_process::start(&host.manifest_path(), data_dir).await;
        host.url = url;
        host.in_process = Some(parts);
        host
    }

    /// The virtual clock of an in-process host.
    pub fn clock(&self) -> &dohost::clock::ManualClock {
        &self
            .in_process
            .as_ref()
            .expect("only an in-process host has a virtual clock")
            .clock
    }

    /// Moves the virtual clock of an in-process host forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.clock().advance(Duration::from_millis(ms));
    }

    /// The runtime of an in-process host.
    pub fn runtime(&self) -> &std::sync::Arc<dohost::runtime::Runtime> {
        &self
            .in_process
            .as_ref()
            .expect("only an in-process host exposes its runtime")
            .runtime
    }

    pub fn data_dir(&self) -> PathBuf {
        match &self.data_dir_override {
            Some(dir) => dir.clone(),
            None => self.dir.path().join("data"),
        }
    }

    /// The manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        match &self.manifest_override {
            Some(path) => path.clone(),
            None => self.dir.path().join("dohost.toml"),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(self.manifest_path())
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.args)
            .env(
                "DOHOST_LOG",
                std::env::var("DOHOST_LOG").unwrap_or_else(|_| "info,guest=info".into()),
            )
            .envs(self.env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = self.nofile {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
    }

    async fn launch(&mut self) {
        assert!(
            self.in_process.is_none(),
            "an in-process host cannot be restarted: use TestHost::start for restarts"
        );
        let mut child = self
            .command()
            .kill_on_drop(true)
            .spawn()
            .expect("spawn dohost");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(url) = ready else {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut err))
                        .await;
            }
            panic!("dohost did not start: {err}");
        };
        // Keep draining stderr so the host never blocks on a full pipe.
        if let Some(stderr) = child.stderr.take() {
            let (log, history) = (self.log.clone(), self.history.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[dohost] {line}");
                    {
                        let mut h = history.lock().unwrap();
                        if h.len() < LOG_HISTORY {
                            h.push(line.clone());
                        }
                    }
                    let _ = log.send(line);
                }
            });
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.url = url;
        self.child = Some(child);
    }

    /// The process id of the running host.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// (current, peak) resident memory of the host process, in bytes (Linux).
    pub fn rss(&self) -> (u64, u64) {
        let status = self
            .pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Subscribes to the host's log lines (subscribe before causing them).
    pub fn log_lines(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.log.subscribe()
    }

    /// Sends SIGTERM and returns at once (see `wait_for_exit`).
    pub async fn sigterm(&self) {
        let pid = self.pid().expect("the host runs");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Sends SIGTERM and waits (at most `bound`) for the exit; returns its code.
    pub async fn terminate(&mut self, bound: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id()?;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        let status = tokio::time::timeout(bound, child.wait())
            .await
            .expect("the host did not exit within the bound")
            .ok()?;
        status.code()
    }

    /// Kills the process (SIGKILL) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Kills the host and starts the failpoint build (`dohost-failpoints`) on the
    /// same data dir with `DOHOST_FAILPOINTS=spec`.
    pub async fn restart_with_failpoints(&mut self, spec: &str) {
        self.kill().await;
        let bin = root().join("target/release/dohost-failpoints");
        assert!(
            bin.is_file(),
            "{} is missing: run `make build` first",
            bin.display()
        );
        self.bin = bin;
        self.env = vec![("DOHOST_FAILPOINTS".into(), spec.into())];
        self.launch().await;
    }

    /// Waits for the process to end by itself (a crash); returns its exit status.
    pub async fn wait_for_exit(&mut self, bound: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the host runs");
        tokio::time::timeout(bound, child.wait())
            .await
            .expect("the host did not stop")
            .expect("wait")
    }

    /// Starts the normal binary again (no failpoints) on the same data dir.
    pub async fn restart_clean(&mut self) {
        self.kill().await;
        self.bin = dohost_bin();
        self.env.clear();
        self.launch().await;
    }

    /// Kills and starts the host again on the same data dir.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.launch().await;
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let res = self
            .client
            .request(method, format!("{}{path}", self.url))
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {}", error_chain(&e)));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.expect("body");
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(reqwest::Method::GET, path, "").await
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.request(reqwest::Method::POST, path, body).await
    }

    /// Calls an RPC method over HTTP with JSON arguments.
    pub async fn rpc(
        &self,
        class: &str,
        name: &str,
        method: &str,
        args: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.post_json(&format!("/rpc/{class}/{name}/{method}"), args)
            .await
    }

    /// POSTs JSON and parses a JSON reply.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let reply = self.post(path, body.to_string()).await;
        let json = reply.json();
        (reply.status, json)
    }

    /// The current metrics, keyed by `name{labels}`.
    pub async fn metrics(&self) -> Metrics {
        let text = self.get("/_dohost/metrics").await.body;
        let mut values = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            if let Some((key, value)) = line.rsplit_once(' ') {
                values.insert(key.to_string(), value.parse().unwrap_or(f64::NAN));
            }
        }
        Metrics(values)
    }
}

impl TestHost {
    /// Keeps Hostile object `name` busy with a request that runs `ms` ms of
    /// guest code (`/slow`); returns once it runs (it left the mailbox), so
    /// that what is sent next queues behind it. Await the handle for its reply.
    pub async fn occupy(
        self: &std::sync::Arc<Self>,
        name: &str,
        ms: u64,
    ) -> tokio::task::JoinHandle<Reply> {
        let mut log = self.log_lines();
        let slow = {
            let (host, path) = (self.clone(), format!("/obj/Hostile/{name}/slow?ms={ms}"));
            tokio::spawn(async move { host.post(&path, "").await })
        };
        wait_for_line(&mut log, "hostile slow request started").await;
        slow
    }

    /// Waits until exactly `n` events are queued in the host's mailboxes.
    pub async fn wait_queued(&self, n: usize) {
        eventually(
            Duration::from_secs(10),
            &format!("{n} events queued"),
            || async { self.metrics().await.get("dohost_mailbox_depth") == n as f64 },
        )
        .await;
    }

    /// Sends `method path` with `body` from a task of its own; returns once
    /// the event is queued (the host's mailboxes hold `queued_after` events),
    /// so that events sent one after another queue in that order.
    pub async fn send_queued(
        self: &std::sync::Arc<Self>,
        method: reqwest::Method,
        path: &str,
        body: impl Into<String>,
        queued_after: usize,
    ) -> tokio::task::JoinHandle<Reply> {
        let (host, path, body) = (self.clone(), path.to_string(), body.into());
        let sent = tokio::spawn(async move { host.request(method, &path, body).await });
        self.wait_queued(queued_after).await;
        sent
    }
}

/// Parsed Prometheus text: samples keyed by `name{labels}`.
#[derive(Debug, Clone)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    /// The value of `key` (e.g. `dohost_instances_active`). Panics if the host
    /// does not export it: a renamed or missing metric must fail the test, not
    /// read as 0.
    pub fn get(&self, key: &str) -> f64 {
        match self.0.get(key) {
            Some(v) => *v,
            None => panic!(
                "metric {key} is not exported; the host has: {:?}",
                self.0.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// The value of `key`, or 0 if the host has no sample of it yet. For a
    /// labelled counter whose label set has not happened (no alarm has failed
    /// yet), where zero is meant; the host does not export an empty family, so
    /// a test using this must also see the metric become non-zero (e.g. in an
    /// `eventually`), or a renamed metric would read as 0 forever.
    pub fn get_or_zero(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// Sum over all label sets of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Polls `check` until it returns true, failing after `timeout`. For waiting on
/// state the host exposes (metrics) where no event can be awaited directly.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub mod ledger;

/// A WebSocket client connected to a test host.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// How long a test waits for a WebSocket message before failing.
pub const WS_WAIT: Duration = Duration::from_secs(10);

impl TestHost {
    /// Opens a WebSocket to `path` (e.g. `/obj/ChatRoom/r/ws?user=a`).
    pub async fn ws(&self, path: &str) -> WsClient {
        self.try_ws(path)
            .await
            .unwrap_or_else(|e| panic!("ws {path}: {e}"))
    }

    /// Opens a WebSocket, or returns the handshake error.
    pub async fn try_ws(
        &self,
        path: &str,
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        let url = format!("{}{path}", self.url.replacen("http://", "ws://", 1));
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(WsClient { stream })
    }
}

impl WsClient {
    pub async fn send(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("ws send");
    }

    pub async fn send_message(&mut self, message: tokio_tungstenite::tungstenite::Message) {
        use futures_util::SinkExt;
        self.stream.send(message).await.expect("ws send");
    }

    /// The next message (text or binary), skipping pings and pongs.
    pub async fn next_message(&mut self) -> tokio_tungstenite::tungstenite::Message {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let msg = tokio::time::timeout(WS_WAIT, self.stream.next())
                .await
                .expect("timed out waiting for a WebSocket message")
                .expect("the socket ended")
                .expect("ws error");
            match msg {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return other,
            }
        }
    }

    /// The next text message.
    pub async fn next_text(&mut self) -> String {
        match self.next_message().await {
            tokio_tungstenite::tungstenite::Message::Text(t) => t.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// The next text message parsed as JSON.
    pub async fn next_json(&mut self) -> serde_json::Value {
        serde_json::from_str(&self.next_text().await).expect("JSON message")
    }

    /// Waits for the server's close frame; returns (code, reason).
    pub async fn closed(&mut self) -> (u16, String) {
        use tokio_tungstenite::tungstenite::Message;
        match self.next_message().await {
            Message::Close(Some(frame)) => (frame.code.into(), frame.reason.to_string()),
            Message::Close(None) => (1005, String::new()),
            other => panic!("expected a close, got {other:?}"),
        }
    }

    /// Closes from the client side with `code` and waits for the end.
    pub async fn close(mut self, code: u16, reason: &str) {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = self.stream.close(Some(frame)).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WS_WAIT, self.stream.next()).await {}
    }

    /// Drops the TCP connection without a close frame.
    pub fn abort(self) {
        drop(self.stream);
    }
}

/// Waits for a log line containing `needle` on a receiver from `log_lines`.
pub async fn wait_for_line(
    lines: &mut tokio::sync::broadcast::Receiver<String>,
    needle: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match lines.recv().await {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("log ended while waiting for {needle:?}: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no log line with {needle:?}"))
}

/// An error with its sources (reqwest's own message hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Percent-encodes `s` for a query value (unreserved characters stay).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
