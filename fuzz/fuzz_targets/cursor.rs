//! Pagination cursors come back from clients: decoding any text never panics, only a cursor of
//! the same endpoint decodes, and a decoded key encodes to a cursor that decodes to it again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streampulse_api::cursor::{decode, encode};
use streampulse_store::ResultKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = decode::<ResultKey>("results", text) {
        let again = encode("results", &key).expect("a decoded key encodes");
        assert_eq!(decode::<ResultKey>("results", &again).ok(), Some(key.clone()));
        assert!(decode::<ResultKey>("alerts", &again).is_err());
    }
    let _ = decode::<(String, i64)>("alerts", text);
});
