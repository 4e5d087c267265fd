//! Bearer tokens and CORS over real HTTP against the binary: without a token or with an unknown
//! one, guarded endpoints answer 401 with `WWW-Authenticate: Bearer`; a read token can query but
//! not ingest or take savepoints (403); write tokens ingest; admin tokens do everything; health
//! endpoints stay open. CORS headers appear only for configured origins. A browser's WebSocket
//! sends its token as `?access_token=`, which `/ws` accepts and no other endpoint does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use serde_json::Value;
use support::{agent, free_port, ws_next, ws_open, Platform};

const READ: &str = "read-token-1";
const WRITE: &str = "write-token-1";
const ADMIN: &str = "admin-token-1";

const CONFIG: &str = r#"
server:
  auth:
    read_tokens: [read-token-1]
    write_tokens: [write-token-1]
    admin_tokens: [admin-token-1]
  cors_origins: [https://dash.example.com]
log:
  partitions: 1
job:
  windows:
    - { name: tumble_10s, type: tumbling, size: 10s }
"#;

struct Reply {
    status: u16,
    header: Option<String>,
    content_type: String,
    body: Value,
}

/// `method path` with an optional bearer token, an optional extra header, and `body` for POSTs.
fn call(
    p: &Platform,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: Option<(&str, &str)>,
    want_header: &str,
) -> Reply {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", p.base));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    let agent = agent();
    let mut resp = if method == "POST" {
        let body = if path.contains("savepoints") {
            r#"{"name": "sp1"}"#
        } else if path == "/jobs" {
            r#"{"job": {"name": "auth_probe", "windows": [{"name": "w", "type": "tumbling", "size": "10s"}], "detectors": []}}"#
        } else {
            r#"{"metric_id": "m", "ts": 1700000000000, "value": 1}"#
        };
        agent.run(
            req.header("content-type", "application/json")
                .body(body)
                .expect("request"),
        )
    } else {
        agent.run(req.body(()).expect("request"))
    }
    .expect("response");
    let header = resp
        .headers()
        .get(want_header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        header,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

#[test]
fn tokens_gate_each_endpoint_by_role() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let range = "start=0&end=1";

    for path in ["/healthz", "/readyz"] {
        assert_eq!(call(&p, "GET", path, None, None, "x").status, 200, "{path}");
    }

    let guarded: &[(&str, &str)] = &[
        ("GET", "/metrics?start=0&end=1"),
        ("GET", "/metrics/m?start=0&end=1"),
        ("GET", "/alerts?start=0&end=1"),
        ("GET", "/events/late?start=0&end=1"),
        ("GET", "/events?metric_id=m&start=0&end=1"),
        ("GET", "/jobs"),
        ("GET", "/jobs/default"),
        ("GET", "/ws"),
        ("POST", "/events"),
        ("POST", "/jobs"),
        ("POST", "/jobs/default/savepoints"),
        ("DELETE", "/jobs/default"),
    ];
    for &(method, path) in guarded {
        for token in [None, Some("not-a-token"), Some("")] {
            let r = call(&p, method, path, token, None, "www-authenticate");
            assert_eq!(r.status, 401, "{method} {path} {token:?}: {}", r.body);
            assert!(
                r.header
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("Bearer"),
                "{method} {path}: WWW-Authenticate {:?}",
                r.header
            );
            assert_eq!(r.content_type, "application/problem+json");
            assert_eq!(r.body["status"], 401);
        }
    }

    // Queries: any token.
    for token in [READ, WRITE, ADMIN] {
        for path in [
            format!("/metrics?{range}"),
            format!("/alerts?{range}"),
            format!("/events/late?{range}"),
            "/jobs".to_string(),
        ] {
            let r = call(&p, "GET", &path, Some(token), None, "x");
            assert_eq!(r.status, 200, "{path} with {token}: {}", r.body);
        }
        // Past auth with any token; this job keeps no raw events, hence the 409.
        let path = format!("/events?metric_id=m&{range}");
        let r = call(&p, "GET", &path, Some(token), None, "x");
        assert_eq!(r.status, 409, "{path} with {token}: {}", r.body);
    }

    // Ingest: write or admin.
    let r = call(&p, "POST", "/events", Some(READ), None, "x");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    assert!(r.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("write"));
    for token in [WRITE, ADMIN] {
        let r = call(&p, "POST", "/events", Some(token), None, "x");
        assert_eq!(r.status, 200, "{token}: {}", r.body);
    }

    // Savepoints: admin only.
    for token in [READ, WRITE] {
        let r = call(
            &p,
            "POST",
            "/jobs/default/savepoints",
            Some(token),
            None,
            "x",
        );
        assert_eq!(r.status, 403, "{token}: {}", r.body);
    }
    let r = call(
        &p,
        "POST",
        "/jobs/default/savepoints",
        Some(ADMIN),
        None,
        "x",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Submitting a job: admin only.
    for token in [READ, WRITE] {
        let r = call(&p, "POST", "/jobs", Some(token), None, "x");
        assert_eq!(r.status, 403, "{token}: {}", r.body);
    }
    let r = call(&p, "POST", "/jobs", Some(ADMIN), None, "x");
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["job"], "auth_probe");
    // Stopping the job: admin only (checked last of the writes: it stops ingest).
    for token in [READ, WRITE] {
        let r = call(&p, "DELETE", "/jobs/default", Some(token), None, "x");
        assert_eq!(r.status, 403, "{token}: {}", r.body);
    }
    let r = call(&p, "DELETE", "/jobs/default", Some(ADMIN), None, "x");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["state"], "stopped");

    // CORS: the configured origin gets the headers, also on a preflight (which needs no token);
    // another origin does not.
    let origin = ("origin", "https://dash.example.com");
    let r = call(
        &p,
        "GET",
        "/jobs",
        Some(READ),
        Some(origin),
        "access-control-allow-origin",
    );
    assert_eq!(r.header.as_deref(), Some("https://dash.example.com"));
    let r = call(
        &p,
        "GET",
        "/jobs",
        Some(READ),
        Some(("origin", "https://evil.example.com")),
        "access-control-allow-origin",
    );
    assert_eq!(r.header, None);
    let preflight = ureq::http::Request::builder()
        .method("OPTIONS")
        .uri(format!("{}/events", p.base))
        .header("origin", "https://dash.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(())
        .expect("preflight request");
    let preflight = agent().run(preflight).expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
}

#[test]
fn without_tokens_everything_is_open_and_no_cors_headers_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), "log:\n  partitions: 1\n", free_port());
    let r = call(
        &p,
        "GET",
        "/metrics?start=0&end=1",
        None,
        Some(("origin", "https://dash.example.com")),
        "access-control-allow-origin",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header, None);
    assert_eq!(call(&p, "POST", "/events", None, None, "x").status, 200);
    // A browser client built for a server with auth still connects: the token is ignored.
    let mut ws = ws_open(&p, "?access_token=whatever-1").expect("upgrade");
    assert_eq!(ws_next(&mut ws)["type"], "subscribed");
}

/// The status, `WWW-Authenticate` and problem body of a refused WebSocket upgrade.
fn refused_upgrade(p: &Platform, query: &str) -> (u16, String, Value) {
    match ws_open(p, query) {
        Ok(_) => panic!("/ws{query}: the upgrade succeeded"),
        Err(tungstenite::Error::Http(resp)) => {
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = resp.body().clone().unwrap_or_default();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (resp.status().as_u16(), challenge, body)
        }
        Err(e) => panic!("/ws{query}: {e}"),
    }
}

#[test]
fn websocket_takes_the_token_from_the_url_and_no_other_endpoint_does() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());

    // No token, an unknown one, an empty one: 401 before the upgrade, naming both ways to send one.
    let (status, challenge, body) = refused_upgrade(&p, "");
    assert_eq!(status, 401, "{body}");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("?access_token=<token>"), "{detail}");
    for query in ["?access_token=not-a-token", "?access_token="] {
        let (status, challenge, body) = refused_upgrade(&p, query);
        assert_eq!(status, 401, "{query}: {body}");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }

    // A read token in the URL opens the socket, next to subscription parameters (which stay
    // checked: an unknown one is still a 400), and the token is not part of the subscription.
    for token in [READ, WRITE, ADMIN] {
        let mut ws = ws_open(&p, &format!("?metrics=cpu.*&access_token={token}"))
            .unwrap_or_else(|e| panic!("upgrade with {token}: {e}"));
        let first = ws_next(&mut ws);
        assert_eq!(first["type"], "subscribed", "{first}");
        assert_eq!(
            first["subscription"]["metrics"],
            serde_json::json!(["cpu.*"])
        );
        assert!(
            first["subscription"].get("access_token").is_none(),
            "{first}"
        );
    }
    let (status, _, body) = refused_upgrade(&p, &format!("?access_token={READ}&metricz=cpu"));
    assert_eq!(status, 400, "{body}");

    // Only /ws reads the URL: a query endpoint with the token in its URL is still a 401.
    for path in [
        format!("/metrics?start=0&end=1&access_token={READ}"),
        format!("/jobs?access_token={ADMIN}"),
    ] {
        let r = call(&p, "GET", &path, None, None, "www-authenticate");
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
}
