//! Metric globs (queries and WebSocket subscriptions): matching never panics, agrees with a
//! textbook dynamic-programming matcher, and every match starts with the glob's literal prefix
//! (which the store's prefix scans rely on).

#![no_main]

use libfuzzer_sys::fuzz_target;
use streampulse_core::glob::{glob_match, literal_prefix};

/// `*` any run of bytes, `?` one byte: the O(|p|·|t|) table.
fn reference(pattern: &[u8], text: &[u8]) -> bool {
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            next[0] = row[0];
        }
        for t in 1..=text.len() {
            next[t] = match p {
                b'*' => next[t - 1] || row[t],
                b'?' => row[t - 1],
                c => row[t - 1] && text[t - 1] == c,
            };
        }
        row = next;
    }
    row[text.len()]
}

fuzz_target!(|data: &[u8]| {
    // Pattern and text are separated by the first NUL; patterns stay short so the reference
    // matcher stays fast.
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, text) = input.split_once('\0').unwrap_or((input, ""));
    if pattern.len() > 64 || text.len() > 256 {
        return;
    }
    let matched = glob_match(pattern, text);
    assert_eq!(matched, reference(pattern.as_bytes(), text.as_bytes()), "{pattern:?} {text:?}");
    if matched {
        assert!(text.starts_with(literal_prefix(pattern)), "{pattern:?} {text:?}");
    }
});
