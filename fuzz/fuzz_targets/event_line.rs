//! One event as text, in every timestamp format: parsing never panics, and what it accepts keeps
//! the limits of its format (id and tag sizes, a finite value, a time in the supported range). An
//! accepted RFC 3339 or epoch time prints and parses back to the same instant. The scan of the
//! common event shape and the general reader agree on every text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streampulse_core::event::{EventFormat, TimestampFormat};
use streampulse_core::time::{format_rfc3339, parse_instant, parse_rfc3339};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for timestamp_format in [
        TimestampFormat::Auto,
        TimestampFormat::EpochMillis,
        TimestampFormat::EpochSeconds,
        TimestampFormat::Rfc3339,
    ] {
        let format = EventFormat {
            timestamp_format,
            ..EventFormat::default()
        };
        // The scan of the common shape reads exactly what the general reader reads.
        assert_eq!(
            format!("{:?}", format.parse_ref(text)),
            format!("{:?}", format.parse_ref_generic(text)),
            "{text:?}"
        );
        if let Ok(event) = format.parse_str(text) {
            assert!(!event.metric_id.is_empty());
            assert!(event.metric_id.len() <= format.max_metric_id_bytes);
            assert!(event.value.is_finite(), "{event:?}");
            assert!(event.tags.len() <= format.max_tags);
            for (k, v) in &event.tags {
                assert!(k.len() <= format.max_tag_key_bytes && v.len() <= format.max_tag_value_bytes);
            }
            assert_eq!(parse_rfc3339(&format_rfc3339(event.ts)), Ok(event.ts), "{event:?}");
        }
    }
    if let Ok(ms) = parse_instant(text) {
        assert_eq!(parse_instant(&format_rfc3339(ms)), Ok(ms), "{text:?}");
        assert_eq!(parse_instant(&ms.to_string()), Ok(ms), "{text:?}");
    }
});
