//! Opaque pagination cursors: the hex encoding of the last returned row's sort key, tagged with
//! the resource it belongs to. Clients pass `next_cursor` back as `cursor` unchanged; anything
//! else that does not decode is a 400.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Problem;

/// `hex(JSON [tag, key])`.
pub fn encode<K: Serialize>(tag: &str, key: &K) -> String {
    let json = serde_json::to_vec(&(tag, key)).unwrap_or_default();
    json.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of a cursor made by [`encode`] with the same `tag`.
pub fn decode<K: DeserializeOwned>(tag: &str, cursor: &str) -> Result<K, Problem> {
    let invalid = || {
        Problem::bad_request(
            "parameter 'cursor' is not a cursor of this endpoint; pass the 'next_cursor' of the \
             previous page unchanged, or omit it to start from the beginning",
        )
    };
    if !cursor.len().is_multiple_of(2) || cursor.len() > 4096 {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    let (got, key): (String, K) = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if got != tag {
        return Err(invalid());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_cursors() {
        let c = encode("r", &("cpu", 5));
        assert_eq!(
            decode::<(String, i64)>("r", &c).ok(),
            Some(("cpu".into(), 5))
        );
        assert!(decode::<(String, i64)>("a", &c).is_err());
        for bad in ["", "z", "abc", "zz", "00"] {
            assert_eq!(
                decode::<(String, i64)>("r", bad).err().map(|p| p.status),
                Some(400)
            );
        }
    }
}
