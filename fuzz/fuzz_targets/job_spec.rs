//! A job definition as `POST /jobs` (JSON) and the config file (YAML) bring it: decoding and
//! validation never panic, and a job that validates still validates after a round trip through
//! its own JSON (what a savepoint or `GET /jobs` writes back).

#![no_main]

use libfuzzer_sys::fuzz_target;
use streampulse_core::job::JobSpec;

fuzz_target!(|data: &[u8]| {
    let specs = [
        serde_json::from_slice::<JobSpec>(data).ok(),
        std::str::from_utf8(data)
            .ok()
            .and_then(|text| serde_yaml_ng::from_str::<JobSpec>(text).ok()),
    ];
    for spec in specs.into_iter().flatten() {
        if spec.validate().is_ok() {
            let json = serde_json::to_vec(&spec).expect("a spec serializes");
            let again: JobSpec = serde_json::from_slice(&json).expect("its JSON reads back");
            assert!(again.validate().is_ok(), "{spec:?}");
        }
    }
});
