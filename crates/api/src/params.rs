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
