//! `GET /ws`: window results and alert transitions pushed as JSON text messages the moment they
//! are stored.
//!
//! Server messages have a `type`: `subscribed` (the subscription in force), `result`, `alert`,
//! `lagged` (`skipped`: messages of the feed this client missed because it read too slowly; the
//! engine never waits for a client), `heartbeat` (every 15 s), `error` (a bad client message; the
//! connection stays up), `stopped` (the job was stopped; the server closes the connection, at the
//! latest one heartbeat after the stop). A client changes its subscription by sending
//! `{"type": "subscribe", ...fields of the subscription...}`.
//!
//! `?job=NAME` follows one of the process's jobs (default: the configured one).
//!
//! In a Kafka consumer group (and in `streampulse serve`) the feed of results and alerts is
//! followed from the job's output topics, so a client of any process sees every partition, not
//! only those its worker owns (`streampulse_kafka::follow`).
//!
//! With auth on, the upgrade request carries a token like any query, either as a header or, for
//! browsers, as `?access_token=<token>` ([`crate::auth::require_ws`]).
//!
//! Limits: at most `server.max_ws_clients` sessions (one more is accepted and closed at once with
//! code 1013, try again later), client messages and frames of at most [`MAX_CLIENT_MESSAGE`]
//! bytes (a larger one closes with 1009), and subscriptions within
//! [`crate::subscription::MAX_PATTERNS`] patterns (one past it closes with 1008). Every close
//! frame carries its reason.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::{json, Value};
use streampulse_engine::feed::{Delivery, Emission, LiveFeed, Subscriber};

use crate::subscription::Subscription;
use crate::{AppState, Problem};

const HEARTBEAT: Duration = Duration::from_secs(15);
/// A client that takes no message for this long is dropped (it holds a seat otherwise).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message (and frame) a client may send: a subscription is a few hundred bytes.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub async fn upgrade(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(mut query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, Problem> {
    // WebSockets are not subject to CORS: without this check any page a user opens could read
    // the live feed of a local platform.
    if let Some(origin) = foreign_origin(&headers, &state.cors_origins) {
        return Err(Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "a WebSocket from origin '{origin}' is refused; list it in server.cors_origins to \
                 allow pages of that origin"
            ),
        ));
    }
    // The token was checked by `auth::require_ws` (or auth is off and it means nothing); it is
    // not part of the subscription.
    query.remove(crate::auth::QUERY_TOKEN);
    // The job picks the feed; the rest is the subscription, which can change later.
    let entry = state
        .jobs
        .get(query.remove("job").filter(|j| !j.is_empty()).as_deref())
        .map_err(Problem::from)?;
    // Parameters are checked before the upgrade, so a bad URL gets a 400 problem document.
    let subscription = Subscription::from_query(&query)?;
    let runtime = entry.runtime().filter(|r| r.is_running()).ok_or_else(|| {
        Problem::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "job '{}' is stopped and pushes nothing; submit it again (POST /jobs) to resume it",
                entry.job().name
            ),
        )
    })?;
    let live = runtime.feed().clone();
    let feed = live.subscribe();
    let runtime = runtime.clone();
    let seat = state.ws_clients.clone().try_acquire_owned().ok();
    let ws = ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    Ok(ws.on_upgrade(move |mut socket| async move {
        let Some(_seat) = seat else {
            let reason = "too many WebSocket clients (server.max_ws_clients); retry later";
            close(&mut socket, close_code::AGAIN, reason).await;
            return;
        };
        session(socket, subscription, feed, live, runtime).await
    }))
}

/// Sends a close frame; the reason is cut to the 123 bytes a close frame can carry.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
}

/// The message of one emission; `None` (logged) for an alert that does not encode, which cannot
/// happen with serde_json's encoder for these fields but is never sent as a half-empty message.
fn emission_json(emission: &Emission) -> Option<Value> {
    Some(match emission {
        Emission::Result(r) => {
            let mut v = r.to_json();
            v["type"] = "result".into();
            v
        }
        Emission::Partial(r) => {
            let mut v = r.to_json();
            v["type"] = "result".into();
            v["partial"] = true.into();
            v
        }
        Emission::Alert(a) => {
            let mut v = match serde_json::to_value(a) {
                Ok(v) => v,
                Err(err) => {
                    tracing::error!(error = %err, alert = %a.id, "cannot encode an alert for a live client");
                    return None;
                }
            };
            v["type"] = "alert".into();
            v
        }
    })
}

/// The browser origin of a request that is neither the API's own (`Host`) nor allowed by
/// `cors_origins`; `None` for clients that send no `Origin` (not browsers) and allowed ones.
fn foreign_origin(headers: &axum::http::HeaderMap, allowed: &[String]) -> Option<String> {
    let origin = headers.get(axum::http::header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    if allowed.iter().any(|a| a == "*" || *a == origin) {
        return None;
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let authority = origin.split_once("://").map(|(_, a)| a);
    if host.is_some() && authority == host {
        return None;
    }
    Some(origin.chars().take(200).collect())
}

async fn send(socket: &mut WebSocket, value: Value) -> bool {
    let sent = socket.send(Message::Text(value.to_string().into()));
    matches!(tokio::time::timeout(SEND_TIMEOUT, sent).await, Ok(Ok(())))
}

/// Sends the lag notice of `delivery`, if any, then the messages of its chunk the subscription
/// wants; false once the client is gone.
async fn deliver(
    socket: &mut WebSocket,
    subscription: &Subscription,
    live: &LiveFeed,
    delivery: Delivery,
) -> bool {
    let skipped = delivery.skipped;
    if skipped > 0 {
        live.record_lagged(skipped);
        let notice = json!({ "type": "lagged", "skipped": skipped,
            "detail": format!("lagged, {skipped} messages skipped: read faster or subscribe to less") });
        if !send(socket, notice).await {
            return false;
        }
    }
    for emission in delivery.chunk.emissions() {
        if !subscription.matches(emission) {
            continue;
        }
        if let Some(message) = emission_json(emission) {
            if !send(socket, message).await {
                return false;
            }
        }
    }
    true
}

async fn session(
    mut socket: WebSocket,
    mut subscription: Subscription,
    mut feed: Subscriber,
    live: LiveFeed,
    runtime: streampulse_engine::Runtime,
) {
    if !send(
        &mut socket,
        json!({ "type": "subscribed", "subscription": subscription }),
    )
    .await
    {
        return;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            received = feed.recv() => {
                let Some(delivery) = received else {
                    break;
                };
                if !deliver(&mut socket, &subscription, &live, delivery).await {
                    break;
                }
            }
            incoming = socket.recv() => {
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let reply = match parse_subscribe(&text) {
                            Ok(new) => match new.check() {
                                Ok(()) => {
                                    subscription = new;
                                    json!({ "type": "subscribed", "subscription": subscription })
                                }
                                Err(reason) => {
                                    close(&mut socket, close_code::POLICY, &reason).await;
                                    break;
                                }
                            },
                            Err(detail) => json!({ "type": "error", "detail": detail }),
                        };
                        if !send(&mut socket, reply).await {
                            break;
                        }
                    }
                    Some(Err(err)) => {
                        // Past the message or frame limit (or a broken connection, where the
                        // close frame is simply not delivered).
                        tracing::debug!(error = %err, "websocket client error");
                        let reason = format!("client messages are at most {MAX_CLIENT_MESSAGE} bytes ({err})");
                        close(&mut socket, close_code::SIZE, &reason).await;
                        break;
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = heartbeat.tick() => {
                if !runtime.is_running() {
                    // The job was stopped: nothing more will come, so say so and close.
                    let _ = send(&mut socket, json!({ "type": "stopped", "job": runtime.job().name,
                        "detail": "the job was stopped (DELETE /jobs/{id}); reconnect once it runs again" })).await;
                    break;
                }
                let now = streampulse_core::clock::since_epoch().as_millis() as u64;
                if !send(&mut socket, json!({ "type": "heartbeat", "ts": now })).await {
                    break;
                }
            }
        }
    }
}

fn parse_subscribe(text: &str) -> Result<Subscription, String> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(
            "expected an object like {\"type\": \"subscribe\", \"metrics\": [\"cpu.*\"]}".into(),
        );
    };
    match obj.remove("type") {
        Some(Value::String(t)) if t == "subscribe" => {}
        _ => return Err("the only client message is {\"type\": \"subscribe\", ...}".into()),
    }
    serde_json::from_value(value).map_err(|e| format!("invalid subscription: {e}"))
}

#[cfg(test)]
mod tests {
    use super::foreign_origin;
    use axum::http::{header, HeaderMap, HeaderValue};

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn only_the_apis_own_and_allowed_origins_may_open_a_websocket() {
        let none: Vec<String> = vec![];
        assert_eq!(
            foreign_origin(&headers(None, "127.0.0.1:8080"), &none),
            None
        );
        let own = headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(foreign_origin(&own, &none), None);
        let evil = headers(Some("https://evil.example"), "127.0.0.1:8080");
        assert_eq!(
            foreign_origin(&evil, &none).as_deref(),
            Some("https://evil.example")
        );
        assert_eq!(
            foreign_origin(&evil, &["https://evil.example".into()]),
            None
        );
        assert_eq!(foreign_origin(&evil, &["*".into()]), None);
    }
}
