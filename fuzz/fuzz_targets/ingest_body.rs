//! A whole ingest body, as NDJSON and as JSON: splitting never panics, never returns more than
//! the event cap, and numbers its items in order, each once.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streampulse_core::batch::{parse, BatchError, Framing};
use streampulse_core::event::EventFormat;

const MAX_EVENTS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let format = EventFormat::default();
    for framing in [Framing::Ndjson, Framing::Json] {
        match parse(data, framing, &format, MAX_EVENTS) {
            Ok(items) => {
                assert!(!items.is_empty() && items.len() <= MAX_EVENTS);
                assert!(items.windows(2).all(|w| w[0].0 < w[1].0), "positions must increase");
                assert!(items.iter().all(|(position, _)| *position >= 1));
            }
            Err(BatchError::TooManyEvents { limit }) => assert_eq!(limit, MAX_EVENTS),
            Err(BatchError::NotUtf8 { valid_up_to }) => assert!(valid_up_to <= data.len()),
            Err(BatchError::Empty) => {}
        }
    }
});
