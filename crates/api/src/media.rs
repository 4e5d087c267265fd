//! The content types a request body may have: `application/json` and `application/x-ndjson`
//! (`application/jsonl` as its alias), on every POST, with or without a body.
//!
//! Why this is a security rule: a browser sends `text/plain`, form and multipart bodies across
//! origins without asking the server first (no CORS preflight), so accepting them would let any
//! web page a user opens submit events or jobs to an API without tokens. JSON content types always
//! trigger a preflight, which fails unless `server.cors_origins` allows the page. This module must
//! never accept a missing content type.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Problem;

/// An accepted body type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Json,
    Ndjson,
}

/// The body type of a request, or 415 naming what was sent and what to send.
pub fn of(headers: &HeaderMap) -> Result<Media, Problem> {
    let sent = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = sent
        .as_deref()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(Media::Json),
        Some("application/x-ndjson" | "application/jsonl") => Ok(Media::Ndjson),
        other => {
            let what = match other {
                None => "no content type".to_string(),
                Some(t) => format!("content type '{}'", t.chars().take(100).collect::<String>()),
            };
            Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{what} is not accepted; send application/json (an object or an array) or \
                     application/x-ndjson (one object per line)"
                ),
            ))
        }
    }
}

/// Middleware: 415 for a POST whose content type is not one of [`Media`].
pub async fn require_json(request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        if let Err(problem) = of(request.headers()) {
            return problem.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(ct: Option<&str>) -> Result<Media, u16> {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        of(&h).map_err(|p| p.status)
    }

    #[test]
    fn only_json_types_pass() {
        assert_eq!(with(Some("application/json")), Ok(Media::Json));
        assert_eq!(
            with(Some("Application/JSON; charset=utf-8")),
            Ok(Media::Json)
        );
        assert_eq!(with(Some("application/x-ndjson")), Ok(Media::Ndjson));
        for refused in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some(""),
        ] {
            assert_eq!(with(refused), Err(415), "{refused:?}");
        }
    }
}
