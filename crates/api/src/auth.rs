//! Optional bearer tokens (`server.auth`): each token has a role, and each route needs one.
//!
//! Roles rank `read < write < admin`: queries (`/metrics`, `/catalog`, `/alerts`, `GET /events`,
//! `/events/late`, `/jobs`, `/ws`) need any token, ingest (`POST /events`) needs write or admin,
//! and job changes (`POST /jobs/{id}/savepoints`, `DELETE /jobs/{id}`) need admin. `/healthz`,
//! `/readyz` and `/openapi.json` are open.
//! With no token configured, auth is off and every route is open.
//!
//! A request without a token, or with one that is not configured, gets a 401 problem document with
//! `WWW-Authenticate: Bearer`; a known token whose role is too weak gets a 403.
//!
//! The token goes in `Authorization: Bearer <token>`. On `/ws` alone ([`require_ws`]) it may also
//! be the query parameter `access_token` (RFC 6750, section 2.3): a browser's WebSocket API cannot
//! set request headers, so without it a dashboard could not connect with auth on. Elsewhere a
//! token in the URL is not accepted, since URLs end up in logs and browser history far more often
//! than headers do.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Problem;

/// What a route needs, and what a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// The configured tokens; empty means auth is off.
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: Vec<(Vec<u8>, Role)>,
}

impl Tokens {
    pub fn new(read: &[String], write: &[String], admin: &[String]) -> Self {
        let with = |list: &[String], role| {
            list.iter()
                .map(move |t| (t.as_bytes().to_vec(), role))
                .collect::<Vec<_>>()
        };
        let mut tokens = with(read, Role::Read);
        tokens.extend(with(write, Role::Write));
        tokens.extend(with(admin, Role::Admin));
        Self { tokens }
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The strongest role of `token`, comparing against every configured token in time that does
    /// not depend on where the first differing byte is.
    fn role_of(&self, token: &[u8]) -> Option<Role> {
        self.tokens
            .iter()
            .filter(|(t, _)| constant_time_eq(t, token))
            .map(|&(_, role)| role)
            .max()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized(detail: &str, error: Option<&str>) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, detail).into_response();
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"streampulse\", error=\"{e}\""),
        None => "Bearer realm=\"streampulse\"".to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// The query parameter that carries a token on `/ws`.
pub const QUERY_TOKEN: &str = "access_token";

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn header_token(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token.trim().to_string())
}

/// Middleware: lets the request through when auth is off or its bearer token's role is at least
/// `needed`.
pub async fn require(
    State((tokens, needed)): State<(Arc<Tokens>, Role)>,
    request: Request,
    next: Next,
) -> Response {
    let token = header_token(&request);
    admit(
        &tokens,
        needed,
        token,
        "this endpoint needs a bearer token: send 'Authorization: Bearer <token>' with a token \
         from server.auth",
        request,
        next,
    )
    .await
}

/// Middleware for `/ws`: as [`require`], taking the token from `?access_token=<token>` when no
/// `Authorization` header is sent (a header, when present, is the one checked).
pub async fn require_ws(
    State((tokens, needed)): State<(Arc<Tokens>, Role)>,
    request: Request,
    next: Next,
) -> Response {
    let from_query = || {
        // A query string that does not parse carries no token; the handler reports it as a 400
        // once the request is authorized.
        Query::<HashMap<String, String>>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(mut q)| q.remove(QUERY_TOKEN))
    };
    let token = header_token(&request).or_else(from_query);
    admit(
        &tokens,
        needed,
        token,
        "this endpoint needs a token: send 'Authorization: Bearer <token>', or (from a browser, \
         which cannot set that header on a WebSocket) '?access_token=<token>', with a token from \
         server.auth",
        request,
        next,
    )
    .await
}

/// Runs `request` when auth is off, or when `token` is known and its role is at least `needed`;
/// otherwise a 401 (`missing` says how to send a token when none was) or a 403.
async fn admit(
    tokens: &Tokens,
    needed: Role,
    token: Option<String>,
    missing: &str,
    request: Request,
    next: Next,
) -> Response {
    if !tokens.enabled() {
        return next.run(request).await;
    }
    let Some(token) = token else {
        return unauthorized(missing, None);
    };
    match tokens.role_of(token.as_bytes()) {
        None => unauthorized(
            "the bearer token is not one of server.auth's tokens",
            Some("invalid_token"),
        ),
        Some(role) if role < needed => Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "this endpoint needs a {} token (or a stronger one); yours is a {} token",
                needed.name(),
                role.name()
            ),
        )
        .into_response(),
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_strongest_role() {
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let tokens = Tokens::new(&s(&["r", "both"]), &s(&["w"]), &s(&["a", "both"]));
        assert!(tokens.enabled());
        assert_eq!(tokens.role_of(b"r"), Some(Role::Read));
        assert_eq!(tokens.role_of(b"w"), Some(Role::Write));
        assert_eq!(tokens.role_of(b"both"), Some(Role::Admin));
        assert_eq!(tokens.role_of(b"x"), None);
        assert_eq!(tokens.role_of(b""), None);
        assert!(!Tokens::default().enabled());
    }
}
