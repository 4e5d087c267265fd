//! Metric id globs: `*` matches any run of characters, `?` exactly one, everything else itself.
//! Shared by the store (result queries by glob), the API (WebSocket subscriptions) and the
//! detector rules (which metrics a rule's detectors score).

/// Whether `text` matches the glob `pattern` (bytewise; `?` is one byte).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Iterative matching with one backtrack point: linear for patterns like "a*b*c".
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether `pattern` holds a wildcard (otherwise it matches only itself).
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// The part of `pattern` before its first wildcard: every match starts with it.
pub fn literal_prefix(pattern: &str) -> &str {
    pattern.find(['*', '?']).map_or(pattern, |i| &pattern[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (pattern, text, expected) in [
            ("cpu.*", "cpu.host1", true),
            ("cpu.*", "cpu.", true),
            ("cpu.*", "mem.host1", false),
            ("*.host?", "cpu.host1", true),
            ("*.host?", "cpu.host12", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("cpu.*"), "cpu.");
        assert_eq!(literal_prefix("cpu.h?st*"), "cpu.h");
        assert_eq!(literal_prefix("*.x"), "");
        assert_eq!(literal_prefix("plain"), "plain");
        assert!(is_glob("a?") && is_glob("*") && !is_glob("a.b"));
    }
}
