//! Query-string parsing with errors that name the parameter; unknown parameters are rejected, and
//! so is a parameter given twice unless it is one that repeats (`tag`).

use std::collections::HashMap;
use std::time::Duration;

use streampulse_core::time::{parse_instant, Millis};

use crate::Problem;

/// Parameters that may be given several times, each occurrence adding a condition.
const REPEATABLE: &[&str] = &["tag"];

pub struct Params {
    values: HashMap<String, Vec<String>>,
}

impl Params {
    /// Fails on any parameter not in `allowed` (a misspelt filter must not silently widen a
    /// query), and on a second occurrence of one that does not repeat (`limit=10&limit=20` has no
    /// meaning that a caller could rely on).
    pub fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, Problem> {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter '{name}'; allowed: {}",
                    allowed.join(", ")
                )));
            }
            if values.contains_key(&name) && !REPEATABLE.contains(&name.as_str()) {
                return Err(Problem::bad_request(format!(
                    "parameter '{name}' is given more than once; give it once"
                )));
            }
            values.entry(name).or_default().push(value);
        }
        Ok(Self { values })
    }

    /// The value of a parameter that does not repeat (`new` guarantees at most one).
    fn one(&self, name: &str) -> Option<&String> {
        self.values.get(name).and_then(|v| v.first())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.one(name).filter(|v| !v.is_empty()).cloned()
    }

    /// `metric_id` (an id or a glob) or `prefix`, at most one of them.
    pub fn metric_filter(&self) -> Result<MetricFilter, Problem> {
        match (self.string("metric_id"), self.string("prefix")) {
            (Some(_), Some(_)) => Err(Problem::bad_request(
                "give 'metric_id' (an id or a glob like cpu.*) or 'prefix', not both",
            )),
            (Some(id), None) => Ok(MetricFilter::Id(id)),
            (None, Some(p)) => Ok(MetricFilter::Prefix(p)),
            (None, None) => Ok(MetricFilter::Any),
        }
    }

    /// Every `tag=key:value` given, as (key, value) pairs; the value may itself hold ':'.
    pub fn tags(&self) -> Result<Vec<(String, String)>, Problem> {
        let given = self.values.get("tag").map_or(&[][..], Vec::as_slice);
        given
            .iter()
            .map(|t| match t.split_once(':') {
                Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
                _ => Err(Problem::bad_request(format!(
                    "parameter 'tag' must be key:value, like tag=host:h1 (repeat it to require \
                     several tags); got '{t}'"
                ))),
            })
            .collect()
    }

    /// One of `options`, by the name `label` gives it; absent or empty is `None`, anything else is
    /// a 400 that lists the allowed names.
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        options: &[T],
        label: impl Fn(T) -> &'static str,
    ) -> Result<Option<T>, Problem> {
        let Some(value) = self.string(name) else {
            return Ok(None);
        };
        match options.iter().copied().find(|&o| label(o) == value) {
            Some(o) => Ok(Some(o)),
            None => {
                let names: Vec<&str> = options.iter().map(|&o| label(o)).collect();
                Err(Problem::bad_request(format!(
                    "parameter '{name}' must be one of: {}; got '{value}'",
                    names.join(", ")
                )))
            }
        }
    }

    pub fn instant(&self, name: &str) -> Result<Option<Millis>, Problem> {
        self.one(name)
            .map(|v| {
                parse_instant(v)
                    .map_err(|e| Problem::bad_request(format!("parameter '{name}': {e}")))
            })
            .transpose()
    }

    pub fn required_instant(&self, name: &str) -> Result<Millis, Problem> {
        self.instant(name)?.ok_or_else(|| {
            Problem::bad_request(format!(
                "parameter '{name}' is required (RFC 3339 or epoch milliseconds)"
            ))
        })
    }

    /// `[start, end)` with both required, `start <= end`, and `end - start` at most `max`: a
    /// range of years would scan the store for as long as it takes, so it is refused up front
    /// rather than left to time out.
    pub fn range(&self, max: Duration) -> Result<(Millis, Millis), Problem> {
        let start = self.required_instant("start")?;
        let end = self.required_instant("end")?;
        if end < start {
            return Err(Problem::bad_request(format!(
                "'end' ({end}) is before 'start' ({start})"
            )));
        }
        // i128: any two i64 instants differ by less than its range, so no overflow.
        let span = i128::from(end) - i128::from(start);
        if span > max.as_millis() as i128 {
            return Err(Problem::bad_request(format!(
                "the range from 'start' to 'end' spans {}, more than the server allows ({}); \
                 query a shorter range (several in turn for a long period), or raise \
                 server.max_query_range in the server's config",
                human(span as u128),
                human(max.as_millis())
            )));
        }
        Ok((start, end))
    }

    /// The key encoded in `cursor` (see [`crate::cursor`]), if one was given.
    pub fn cursor<K: serde::de::DeserializeOwned>(&self, tag: &str) -> Result<Option<K>, Problem> {
        self.string("cursor")
            .map(|c| crate::cursor::decode(tag, &c))
            .transpose()
    }

    pub fn limit(&self, max: usize) -> Result<usize, Problem> {
        match self.one("limit") {
            None => Ok(max),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(Problem::bad_request(format!(
                    "parameter 'limit' must be an integer from 1 to {max}"
                ))),
            },
        }
    }
}

/// `ms` milliseconds in the units of the config's durations, largest first: `31d`, `1d 12h`,
/// `90s 5ms` is `1m 30s 5ms`; zero is `0ms`.
fn human(ms: u128) -> String {
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = ms;
    let mut parts = Vec::new();
    for (name, size) in UNITS {
        if rest >= size {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
    }
    if parts.is_empty() {
        return "0ms".into();
    }
    parts.join(" ")
}

/// Which metrics a query names: [`Params::metric_filter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricFilter {
    Any,
    /// `metric_id`: a literal id or a glob.
    Id(String),
    Prefix(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::new(values, &["state", "tag", "start", "end"]).expect("allowed")
    }

    #[test]
    fn choice_accepts_known_names_and_lists_them_otherwise() {
        let label = |b: bool| if b { "yes" } else { "no" };
        let options = [true, false];
        assert_eq!(
            params(&[]).choice("state", &options, label).ok(),
            Some(None)
        );
        assert_eq!(
            params(&[("state", "")])
                .choice("state", &options, label)
                .ok(),
            Some(None)
        );
        assert_eq!(
            params(&[("state", "no")])
                .choice("state", &options, label)
                .ok(),
            Some(Some(false))
        );
        let err = params(&[("state", "YES")])
            .choice("state", &options, label)
            .err();
        let err = err.expect("a 400");
        assert_eq!(err.status, 400);
        assert_eq!(
            err.detail,
            "parameter 'state' must be one of: yes, no; got 'YES'"
        );
    }

    #[test]
    fn unknown_parameters_are_rejected_by_name() {
        let values = [("sate".to_string(), "firing".to_string())]
            .into_iter()
            .collect();
        let err = Params::new(values, &["state", "limit"])
            .err()
            .expect("a 400");
        assert_eq!(
            err.detail,
            "unknown query parameter 'sate'; allowed: state, limit"
        );
    }

    #[test]
    fn tags_repeat_split_at_the_first_colon_and_must_have_one() {
        let p = params(&[
            ("tag", "host:h1"),
            ("tag", "url:http://x"),
            ("tag", "empty:"),
        ]);
        let tags = p.tags().expect("valid tags");
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            tags,
            vec![
                pair("host", "h1"),
                pair("url", "http://x"),
                pair("empty", "")
            ]
        );
        assert_eq!(params(&[]).tags().ok(), Some(vec![]));
        for bad in ["host", "", ":h1"] {
            let err = params(&[("tag", bad)]).tags().expect_err("a 400");
            assert_eq!(err.status, 400);
            assert!(err.detail.contains("must be key:value"), "{}", err.detail);
            assert!(
                err.detail.contains(&format!("got '{bad}'")),
                "{}",
                err.detail
            );
        }
    }

    #[test]
    fn a_parameter_that_does_not_repeat_is_refused_twice() {
        let pairs = vec![
            ("state".to_string(), "firing".to_string()),
            ("state".to_string(), "resolved".to_string()),
        ];
        let err = Params::new(pairs, &["state"]).err().expect("a 400");
        assert_eq!(
            err.detail,
            "parameter 'state' is given more than once; give it once"
        );
    }

    #[test]
    fn ranges_are_ordered_and_at_most_the_maximum() {
        let day = Duration::from_secs(86_400);
        let range =
            |start: &str, end: &str, max| params(&[("start", start), ("end", end)]).range(max);
        assert_eq!(range("0", "86400000", day).ok(), Some((0, 86_400_000)));
        assert_eq!(range("5", "5", day).ok(), Some((5, 5)));
        let err = range("6", "5", day).expect_err("a 400");
        assert_eq!(err.detail, "'end' (5) is before 'start' (6)");
        let err = range("0", "86400001", day).expect_err("a 400");
        assert_eq!(err.status, 400);
        assert!(
            err.detail.starts_with(
                "the range from 'start' to 'end' spans 1d 1ms, more than the server allows (1d)"
            ),
            "{}",
            err.detail
        );
        assert!(
            err.detail.contains("server.max_query_range"),
            "{}",
            err.detail
        );
        // The widest range is refused, and the largest maximum lets it through.
        let widest = streampulse_core::time::MAX_TIMESTAMP.to_string();
        let err = range("0", &widest, day).expect_err("a 400");
        assert!(err.detail.contains("spans 2932896d"), "{}", err.detail);
        assert!(range("0", &widest, Duration::MAX).is_ok());
    }

    #[test]
    fn durations_read_like_the_config() {
        assert_eq!(human(0), "0ms");
        assert_eq!(human(31 * 86_400_000), "31d");
        assert_eq!(human(90_005), "1m 30s 5ms");
        assert_eq!(human(86_400_000 + 12 * 3_600_000), "1d 12h");
    }
}
