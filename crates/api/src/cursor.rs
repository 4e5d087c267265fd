//! Opaque pagination cursors: the hex encoding of the last returned row's sort key, tagged with
//! the resource it belongs to. Clients pass `next_cursor` back as `cursor` unchanged; anything
//! else that does not decode is a 400.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Problem;

/// `hex(JSON [tag, key])`.
pub fn encode<K: Serialize>(tag: &str, key: &K) -> Result<String, Problem> {
    let json = serde_json::to_vec(&(tag, key))
        .map_err(|e| Problem::internal(format!("cannot encode the next page's cursor: {e}")))?;
    Ok(json.iter().map(|b| format!("{b:02x}")).collect())
}

/// The paging rule of every endpoint that reads one row more than it shows: cuts `rows` (read
/// with a limit of `limit + 1`) to `limit`, and when there was more, returns the cursor that
/// resumes after the last row kept.
pub fn cut<T, K: Serialize>(
    rows: &mut Vec<T>,
    limit: usize,
    tag: &str,
    key_of: impl Fn(&T) -> K,
) -> Result<Option<String>, Problem> {
    if rows.len() <= limit {
        return Ok(None);
    }
    rows.truncate(limit);
    rows.last()
        .map(|last| encode(tag, &key_of(last)))
        .transpose()
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
    fn cut_keeps_the_limit_and_resumes_after_the_last_row_kept() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(cut(&mut rows, 3, "r", |r| *r).unwrap(), None);
        assert_eq!(rows, [1, 2, 3]);
        let next = cut(&mut rows, 2, "r", |r| *r).unwrap().unwrap();
        assert_eq!(rows, [1, 2]);
        assert_eq!(decode::<i32>("r", &next).ok(), Some(2));
    }

    #[test]
    fn round_trips_and_rejects_foreign_cursors() {
        let c = encode("r", &("cpu", 5)).unwrap();
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
