//! Which `Host` names the API answers for: the guard against DNS rebinding.
//!
//! Why: a web page on `evil.example` can make its own name resolve to 127.0.0.1, and the browser
//! then treats requests to the local API as same-origin (no CORS preflight, responses readable),
//! with the page's name in `Host`. A server on loopback therefore answers only for loopback names
//! (`localhost`, `*.localhost`, `127.x.y.z`, `[::1]`) unless `server.allowed_hosts` names others.
//! A server on another address answers for any name unless `server.allowed_hosts` is set. This
//! module must never let a request without a `Host` through when names are restricted.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Problem;

/// The names the API answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosts {
    Any,
    /// Loopback names, plus these (lower case, without port).
    Loopback(Vec<String>),
    /// Only these (lower case, without port).
    Only(Vec<String>),
}

impl Hosts {
    /// The rule for a server listening on `listen` with `server.allowed_hosts` = `allowed`
    /// (`*` among them: any name).
    pub fn for_listen(listen: SocketAddr, allowed: &[String]) -> Self {
        let names: Vec<String> = allowed.iter().map(|h| h.to_ascii_lowercase()).collect();
        if names.iter().any(|h| h == "*") {
            Hosts::Any
        } else if listen.ip().is_loopback() {
            Hosts::Loopback(names)
        } else if names.is_empty() {
            Hosts::Any
        } else {
            Hosts::Only(names)
        }
    }

    /// Whether a request with this `Host` header value is answered.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let extra = match self {
            Hosts::Any => return true,
            Hosts::Loopback(extra) | Hosts::Only(extra) => extra,
        };
        let Some(name) = host.map(name_of) else {
            return false;
        };
        if extra.contains(&name) {
            return true;
        }
        matches!(self, Hosts::Loopback(_)) && is_loopback_name(&name)
    }
}

/// The name of a `Host` value: lower case, without the port (`[::1]:8080` → `[::1]`).
fn name_of(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host.clone(), |h| format!("{h}]"));
    }
    host.rsplit_once(':')
        .map_or(host.clone(), |(name, _)| name.to_string())
}

fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let ip = name.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Middleware: 403 for a `Host` this server does not answer for.
pub async fn require(
    State(hosts): State<std::sync::Arc<Hosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        // HTTP/2 carries it in the URI's authority.
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if hosts.allows(host.as_deref()) {
        return next.run(request).await;
    }
    let shown: String = host.unwrap_or_default().chars().take(100).collect();
    Problem::new(
        StatusCode::FORBIDDEN,
        format!(
            "this server does not answer for the host '{shown}': on a loopback address it answers \
             only for localhost names (a guard against DNS rebinding); list the names clients use \
             in server.allowed_hosts"
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_answer_for_loopback_names_and_listed_ones() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let hosts = Hosts::for_listen(local, &["dash.internal".into()]);
        for ok in [
            "localhost:8080",
            "LOCALHOST",
            "api.localhost:1",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:8080",
            "dash.internal:8080",
        ] {
            assert!(hosts.allows(Some(ok)), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:8080",
            "",
            "[::2]:80",
        ] {
            assert!(!hosts.allows(Some(refused)), "{refused}");
        }
        assert!(!hosts.allows(None));
    }

    #[test]
    fn other_servers_answer_for_any_name_unless_listed() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(Hosts::for_listen(any, &[]).allows(Some("evil.example")));
        let only = Hosts::for_listen(any, &["api.example.com".into()]);
        assert!(only.allows(Some("api.example.com:443")));
        assert!(!only.allows(Some("localhost")));
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(Hosts::for_listen(local, &["*".into()]).allows(Some("evil.example")));
    }
}
