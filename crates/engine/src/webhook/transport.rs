//! One HTTP attempt and what its outcome means for the retry loop.
//!
//! Retried: connection errors, timeouts, 408, 429 and 5xx (a `Retry-After` in seconds is honoured,
//! up to `max_backoff`). Not retried: any other status outside 2xx (the receiver rejected the
//! request; sending it again cannot help) and a URL the client cannot use at all. Redirects are
//! not followed: a webhook URL must point at the receiver itself.

use std::time::Duration;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Worth another attempt, after at least `after` when the receiver said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Reject(String),
}

/// Sends one request body to one webhook. A trait so that the delivery loop is tested without
/// sockets.
pub trait Transport: Send + 'static {
    fn post(&mut self, body: &[u8], idempotency_key: &str, timeout: Duration) -> Attempt;
}

/// What a response status means.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Retry {
            reason: format!("HTTP {status}"),
            after: retry_after,
        },
        _ => Attempt::Reject(format!("HTTP {status}")),
    }
}

/// HTTP/1.1 over plain TCP with ureq (built without TLS: `http://` URLs only).
pub struct HttpTransport {
    agent: ureq::Agent,
    url: String,
}

impl HttpTransport {
    pub fn new(url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("streampulse/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            agent,
            url: url.to_string(),
        }
    }
}

/// Largest response body read (and ignored) so that the connection can be reused.
const MAX_RESPONSE_BODY: u64 = 64 * 1024;

impl Transport for HttpTransport {
    fn post(&mut self, body: &[u8], idempotency_key: &str, timeout: Duration) -> Attempt {
        let sent = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", "application/json")
            .header("idempotency-key", idempotency_key)
            .send(body);
        match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let _ = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BODY)
                    .read_to_vec();
                classify_status(status, retry_after)
            }
            Err(
                err @ (ureq::Error::BadUri(_)
                | ureq::Error::Http(_)
                | ureq::Error::TlsRequired
                | ureq::Error::RequireHttpsOnly(_)
                | ureq::Error::InvalidProxyUrl),
            ) => Attempt::Reject(err.to_string()),
            Err(err) => Attempt::Retry {
                reason: err.to_string(),
                after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify_status(200, None), Attempt::Delivered);
        assert_eq!(classify_status(204, None), Attempt::Delivered);
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_status(s, None), Attempt::Retry { .. }),
                "{s}"
            );
        }
        for s in [301, 400, 401, 404, 410, 422] {
            assert!(
                matches!(classify_status(s, None), Attempt::Reject(_)),
                "{s}"
            );
        }
        let wait = Some(Duration::from_secs(3));
        assert!(
            matches!(classify_status(429, wait), Attempt::Retry { after, .. } if after == wait)
        );
    }
}
