//! A query string as a client sends it to `GET /metrics`: parsing every parameter (range, limit,
//! tags, cursor) never panics, and what is accepted is within its bounds.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use streampulse_api::params::Params;
use streampulse_store::ResultKey;

const ALLOWED: &[&str] = &["start", "end", "metric_id", "prefix", "window", "job", "tag", "limit", "cursor"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `k=v&k=v`, split as a form decoder would (percent-decoding is the HTTP layer's job).
    let pairs: Vec<(String, String)> = text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let Ok(params) = Params::new(pairs, ALLOWED) else {
        return;
    };
    let max_range = Duration::from_secs(3600);
    if let Ok((start, end)) = params.range(max_range) {
        assert!(start <= end);
        assert!(i128::from(end) - i128::from(start) <= 3_600_000);
    }
    if let Ok(limit) = params.limit(100) {
        assert!((1..=100).contains(&limit));
    }
    if let Ok(tags) = params.tags() {
        assert!(tags.iter().all(|(k, _)| !k.is_empty()));
    }
    let _ = params.cursor::<ResultKey>("results");
});
