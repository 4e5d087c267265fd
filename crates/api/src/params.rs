//! Query-string parsing with errors that name the parameter; unknown parameters are rejected.

use std::collections::HashMap;

use streampulse_core::time::{parse_instant, Millis};

use crate::Problem;

pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Fails on any parameter not in `allowed`: a misspelt filter must not silently widen a query.
    pub fn new(values: HashMap<String, String>, allowed: &[&str]) -> Result<Self, Problem> {
        if let Some(unknown) = values.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Problem::bad_request(format!(
                "unknown query parameter '{unknown}'; allowed: {}",
                allowed.join(", ")
            )));
        }
        Ok(Self { values })
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).filter(|v| !v.is_empty()).cloned()
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
        self.values
            .get(name)
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

    /// `[start, end)` with both required and `start <= end`.
    pub fn range(&self) -> Result<(Millis, Millis), Problem> {
        let start = self.required_instant("start")?;
        let end = self.required_instant("end")?;
        if end < start {
            return Err(Problem::bad_request(format!(
                "'end' ({end}) is before 'start' ({start})"
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
        match self.values.get("limit") {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let values = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::new(values, &["state"]).expect("allowed")
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
}
