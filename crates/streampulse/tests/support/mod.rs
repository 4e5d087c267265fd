//! Test harness: runs the real `streampulse` binary as a child process and talks to it over HTTP.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A WebSocket client of `/ws`.
pub type WsClient = WebSocket<MaybeTlsStream<TcpStream>>;

pub struct Platform {
    pub child: Child,
    pub base: String,
    /// `http://127.0.0.1:<metrics port>`: the Prometheus exposition is at `/metrics` there.
    pub metrics_base: String,
    pub dir: PathBuf,
}

/// A port that was free a moment ago, and that no other test of this process got from here:
/// the tests of one binary run in parallel, and two platforms given the same port would have
/// one answer the other's requests (the second fails to bind, but the first answers its
/// readiness check).
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`, 32768 and up by default):
/// a port the kernel handed out for `bind(0)` is also what it hands out as the local port of
/// outgoing connections, and under load one of those took a platform's port between this check
/// and the platform's bind. The fixed ports of `deploy/local/services.sh` (9042, 9092-9095,
/// 4317, 4318, 16686, 7000) lie below this range.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const END: u16 = 32_768;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    // Where this process starts in the range, so that two test processes (a rerun while an
    // earlier one is still tearing down) do not walk the same ports.
    let span = u32::from(END - FIRST);
    let start = (std::process::id().wrapping_mul(7919) % span) as u16;
    for step in 0..END - FIRST {
        let port = FIRST + (start + step) % (END - FIRST);
        let free = |host: &str| TcpListener::bind((host, port)).is_ok();
        if !given.contains(&port) && free("0.0.0.0") && free("127.0.0.1") {
            given.push(port);
            return port;
        }
    }
    panic!("no free port in {FIRST}..{END}");
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

impl Platform {
    /// Starts `streampulse run` with `config` (YAML) in `dir` and waits until it answers.
    pub fn start(dir: &Path, config: &str, port: u16) -> Platform {
        Self::start_with(dir, config, port, &[])
    }

    /// As [`Self::start`], with extra arguments to `run`. The metrics port is a free one (see
    /// [`Self::start_full`] to choose it), so tests never compete for the default 9249.
    pub fn start_with(dir: &Path, config: &str, port: u16, extra: &[&str]) -> Platform {
        Self::start_full(dir, config, port, extra, None)
    }

    /// As [`Self::start_with`], serving the Prometheus exposition on `metrics_port` (a free port
    /// when `None`).
    pub fn start_full(
        dir: &Path,
        config: &str,
        port: u16,
        extra: &[&str],
        metrics_port: Option<u16>,
    ) -> Platform {
        let data_dir = dir.join("data");
        let mut args = vec!["--data-dir", data_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::launch("run", dir, config, port, metrics_port, &args)
    }

    /// Starts `streampulse serve` (the API alone over the shared store) with `config` in `dir`
    /// and waits until it answers.
    pub fn serve(dir: &Path, config: &str, port: u16) -> Platform {
        Self::launch("serve", dir, config, port, None, &[])
    }

    fn launch(
        command: &str,
        dir: &Path,
        config: &str,
        port: u16,
        metrics_port: Option<u16>,
        extra: &[&str],
    ) -> Platform {
        let metrics_port = metrics_port.unwrap_or_else(free_port);
        std::fs::create_dir_all(dir).unwrap();
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("platform.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_streampulse"))
            .arg(command)
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn streampulse");
        let mut platform = Platform {
            child,
            base: format!("http://127.0.0.1:{port}"),
            metrics_base: format!("http://127.0.0.1:{metrics_port}"),
            dir: dir.to_path_buf(),
        };
        platform.wait_ready();
        platform
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let agent = agent();
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "platform exited ({exit}) before it was ready; log:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = agent.get(&format!("{}/readyz", self.base)).call() {
                if r.status() == 200 {
                    // Answered by this child, not by a process that held the port before it.
                    std::thread::sleep(Duration::from_millis(50));
                    if let Ok(Some(exit)) = self.child.try_wait() {
                        panic!(
                            "platform exited ({exit}) although {} answered; log:\n{}",
                            self.base,
                            self.log()
                        );
                    }
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("platform did not become ready; log:\n{}", self.log());
    }

    /// Fails the test for a request the platform did not answer, with what tells why: whether
    /// its process is still there (a zombie has exited) and how its log ends.
    fn unanswered(&self, method: &str, path: &str, err: &ureq::Error) -> ! {
        let pid = self.child.id();
        let process = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => match stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next())
            {
                Some("Z") => "has exited".to_string(),
                Some(state) => format!("is there (state {state})"),
                None => "is there".to_string(),
            },
            Err(_) => "is gone".to_string(),
        };
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        panic!(
            "{method} {}{path}: {err}; process {pid} {process}; its log ends:\n{tail}",
            self.base
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("platform.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown hook runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process and leaves it running.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The exit status, once the process has exited on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for streampulse")
    }

    /// Waits up to `timeout` for the process to exit on its own (`what` it should have done
    /// says why, if it does not); returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration, what: &str) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.exited() {
                return exit;
            }
            assert!(Instant::now() < deadline, "{what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT (Ctrl-C): a clean stop with a final checkpoint.
    pub fn interrupt(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait for streampulse")
    }

    pub fn post(
        &self,
        body: &str,
        content_type: &str,
        key: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let mut req = agent()
            .post(&format!("{}/events", self.base))
            .header("content-type", content_type);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let mut resp = req.send(body).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub fn get(&self, path_and_query: &str) -> (u16, Value) {
        let (status, _, body) = self.get_typed(path_and_query);
        (status, body)
    }

    /// `DELETE` (e.g. `/jobs/{id}?savepoint=NAME`): status and JSON body.
    pub fn delete(&self, path_and_query: &str) -> (u16, Value) {
        let mut resp = agent()
            .delete(&format!("{}{path_and_query}", self.base))
            .call()
            .unwrap_or_else(|e| self.unanswered("DELETE", path_and_query, &e));
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            resp.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// As [`Self::get`], with the answer's `Content-Type` between status and body.
    pub fn get_typed(&self, path_and_query: &str) -> (u16, String, Value) {
        let mut resp = agent()
            .get(&format!("{}{path_and_query}", self.base))
            .call()
            .unwrap_or_else(|e| self.unanswered("GET", path_and_query, &e));
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            content_type,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The Prometheus exposition, as text.
    pub fn scrape(&self) -> String {
        let mut resp = agent()
            .get(&format!("{}/metrics", self.metrics_base))
            .call()
            .expect("GET /metrics");
        assert_eq!(resp.status(), 200);
        resp.body_mut().read_to_string().expect("exposition text")
    }

    pub fn status(&self) -> Value {
        self.get("/jobs/default").1
    }

    /// Waits until every partition has processed its whole log and holds no open window.
    pub fn wait_drained(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            let parts = status["partitions"].as_array().cloned().unwrap_or_default();
            let drained = !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p["next_offset"] == p["log_end_offset"] && p["open_windows"] == 0);
            if drained {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not drained in {timeout:?}: {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every partition has processed its whole log (windows may stay open).
    pub fn wait_drained_to_log(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            let parts = status["partitions"].as_array().cloned().unwrap_or_default();
            if !parts.is_empty()
                && parts
                    .iter()
                    .all(|p| p["next_offset"] == p["log_end_offset"])
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not drained in {timeout:?}: {status}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `method path` with a JSON `body` (none when `Value::Null`): the status and the JSON answer.
    pub fn send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let agent = agent();
        let mut resp = if body.is_null() {
            agent.run(req.body(()).expect("request"))
        } else {
            agent.run(
                req.header("content-type", "application/json")
                    .body(body.to_string())
                    .expect("request"),
            )
        }
        .expect("response");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Every row of `GET /metrics?{query}`, walking all pages, by (metric, window, window start).
    pub fn walk_results(&self, query: &str) -> BTreeMap<(String, String, i64), Value> {
        self.result_pages(query)
            .into_iter()
            .map(|r| {
                let key = (
                    r["metric_id"].as_str().unwrap_or_default().to_string(),
                    r["window"].as_str().unwrap_or_default().to_string(),
                    r["window_start"].as_i64().unwrap_or_default(),
                );
                (key, r)
            })
            .collect()
    }

    /// Every row of `GET /metrics?{query}`, walking all pages, in the API's order.
    fn result_pages(&self, query: &str) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/metrics?{query}&limit=10000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get(&path);
            assert_eq!(status, 200, "{body}");
            rows.extend(body["results"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return rows,
            }
        }
    }

    /// Every stored window result in [start, end), as JSON objects, over as many pages as it
    /// takes (a longer run of a timed test stores more rows).
    pub fn results(&self, start: i64, end: i64, metric_id: Option<&str>) -> Vec<Value> {
        let filter = metric_id
            .map(|m| format!("&metric_id={m}"))
            .unwrap_or_default();
        self.result_pages(&format!("start={start}&end={end}{filter}"))
    }
}

/// Opens `/ws{query}` (`query` empty or starting with `?`) with a 10 s read timeout; a refused
/// upgrade is `tungstenite::Error::Http` holding the answer.
pub fn ws_open(p: &Platform, query: &str) -> Result<WsClient, tungstenite::Error> {
    let url = format!("{}/ws{query}", p.base.replace("http://", "ws://"));
    let (mut ws, _) = tungstenite::connect(url)?;
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
    }
    Ok(ws)
}

/// The next text message as JSON, skipping pings and pongs.
pub fn ws_next(ws: &mut WsClient) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Cassandra node of `STREAMPULSE_TEST_CASSANDRA` (`host:port`, e.g. what
/// `deploy/local/services.sh start cassandra` prints), or `None` after printing "skipped"; under
/// `CI` a missing node is a failure, not a skip.
pub fn cassandra_node() -> Option<String> {
    streampulse_testkit::env::required(
        "STREAMPULSE_TEST_CASSANDRA",
        "a Cassandra node (host:port; deploy/local/services.sh start cassandra prints it)",
    )
}

/// A `store:` section for the Cassandra store on `node`, in a keyspace of its own (named after
/// `name`, this process and the clock, so runs never share rows).
pub fn cassandra_store_yaml(node: &str, name: &str) -> String {
    let nanos = streampulse_core::clock::since_epoch().subsec_nanos();
    let keyspace = format!("t_{name}_{:x}{nanos:x}", std::process::id());
    format!(
        "store:\n  backend: cassandra\n  cassandra:\n    contact_points: [\"{node}\"]\n    keyspace: {keyspace}\n    request_timeout: 30s\n"
    )
}

/// `(metric_id, ts, value)` events as an NDJSON body.
pub fn ndjson(events: &[(String, i64, f64)]) -> String {
    events
        .iter()
        .map(|(m, ts, v)| {
            serde_json::json!({"metric_id": m, "ts": ts, "value": v}).to_string() + "\n"
        })
        .collect()
}

/// The window results the job of `config` (a YAML config with a `job:` section) gives over
/// `events`, by brute force: the reference the crash and outage tests compare stored rows with.
pub fn oracle_rows(
    config: &str,
    events: &[streampulse_testkit::oracle::Event],
) -> BTreeMap<streampulse_testkit::oracle::Key, streampulse_testkit::oracle::Row> {
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(config).unwrap();
    let spec: streampulse_core::job::JobSpec =
        serde_yaml_ng::from_value(config["job"].clone()).unwrap();
    streampulse_testkit::oracle::batch(&spec.validate().unwrap(), events)
}

/// A finished process's status and output, for an assertion message.
pub fn describe(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `streampulse check-config --config path` as a deployment would run it: none of the
/// variables that change what a config means (the config path, the API token lists, the OTLP
/// endpoint) are inherited from the test's environment; `env` sets some.
pub fn check_config(path: &Path, env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streampulse"));
    cmd.args(["check-config", "--config"]).arg(path);
    for var in [
        "STREAMPULSE_CONFIG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "STREAMPULSE_READ_TOKENS",
        "STREAMPULSE_WRITE_TOKENS",
        "STREAMPULSE_ADMIN_TOKENS",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().cloned())
        .output()
        .expect("run streampulse check-config")
}
