//! Writes window results as CSV or NDJSON (for `replay`).
//!
//! CSV columns, in order: `metric_id,window,window_start,window_end,count,sum,min,max,mean`, then
//! the further aggregates any window of the job asks for (empty where a window lacks one), then
//! `revision`. Times are epoch milliseconds.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use streampulse_core::aggregate::AggregateKind;
use streampulse_core::job::Job;
use streampulse_core::output::WindowResult;

pub enum ResultWriter {
    Csv {
        out: Box<dyn Write>,
        extra: Vec<AggregateKind>,
        /// One row, built here and written at once: a `write!` per row went through the
        /// formatting machinery field by field, about a tenth of a replay's instructions.
        line: Vec<u8>,
        floats: zmij::Buffer,
    },
    Ndjson {
        out: Box<dyn Write>,
    },
}

impl ResultWriter {
    pub fn create(path: &Path, job: &Job) -> anyhow::Result<Self> {
        let out: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(BufWriter::new(io::stdout()))
        } else {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            Box::new(BufWriter::with_capacity(1 << 20, file))
        };
        let ndjson = path
            .extension()
            .is_some_and(|e| e == "ndjson" || e == "jsonl");
        if ndjson {
            return Ok(Self::Ndjson { out });
        }
        let mut extra: Vec<AggregateKind> = Vec::new();
        for kind in AggregateKind::ALL {
            if job.windows.iter().any(|w| w.extra.contains(&kind)) {
                extra.push(kind);
            }
        }
        let mut writer = Self::Csv {
            out,
            extra,
            line: Vec::with_capacity(256),
            floats: zmij::Buffer::new(),
        };
        writer.write_header()?;
        Ok(writer)
    }

    fn write_header(&mut self) -> anyhow::Result<()> {
        if let Self::Csv { out, extra, .. } = self {
            write!(
                out,
                "metric_id,window,window_start,window_end,count,sum,min,max,mean"
            )?;
            for kind in extra.iter() {
                write!(out, ",{kind}")?;
            }
            writeln!(out, ",revision")?;
        }
        Ok(())
    }

    pub fn write(&mut self, r: &WindowResult) -> anyhow::Result<()> {
        match self {
            Self::Ndjson { out } => {
                serde_json::to_writer(&mut *out, &r.to_json())?;
                out.write_all(b"\n")?;
            }
            Self::Csv {
                out,
                extra,
                line,
                floats,
            } => {
                line.clear();
                line.extend_from_slice(csv_field(&r.metric_id).as_bytes());
                line.push(b',');
                line.extend_from_slice(csv_field(&r.window).as_bytes());
                let mut ints = itoa::Buffer::new();
                for t in [r.window_start, r.window_end] {
                    line.push(b',');
                    line.extend_from_slice(ints.format(t).as_bytes());
                }
                line.push(b',');
                line.extend_from_slice(ints.format(r.count).as_bytes());
                for x in [r.sum, r.min, r.max, r.mean] {
                    line.push(b',');
                    push_float(line, floats, x);
                }
                for &kind in extra.iter() {
                    line.push(b',');
                    if let Some(x) = r.get(kind) {
                        push_float(line, floats, x);
                    }
                }
                line.push(b',');
                line.extend_from_slice(ints.format(r.revision).as_bytes());
                line.push(b'\n');
                out.write_all(line)?;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Csv { out, .. } | Self::Ndjson { out } => out.flush()?,
        }
        Ok(())
    }
}

/// Quotes a field that holds a comma, quote or newline (RFC 4180).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Appends `x` exactly as `format!("{x}")` writes it (no exponent, `1` for 1.0).
///
/// `zmij` finds the same shortest round-trip digits several times faster, but writes 1.0 as
/// `1.0`, large and small numbers with an exponent, and breaks an exact tie between two shortest
/// candidates to even where `Display` rounds up. A tie needs 16 or more significant digits
/// (candidates of 15 digits are further apart than a double's spacing), so those, exponents and
/// non-finite values go to `Display`.
fn push_float(line: &mut Vec<u8>, floats: &mut zmij::Buffer, x: f64) {
    if x.is_finite() {
        let text = floats.format_finite(x);
        let significant = text
            .bytes()
            .filter(u8::is_ascii_digit)
            .skip_while(|&d| d == b'0')
            .count();
        if significant < 16 && !text.contains('e') {
            let text = text.strip_suffix(".0").unwrap_or(text);
            line.extend_from_slice(text.as_bytes());
            return;
        }
    }
    // Writing into a Vec cannot fail.
    let _ = write!(line, "{x}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(x: f64) -> String {
        let mut line = Vec::new();
        push_float(&mut line, &mut zmij::Buffer::new(), x);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn floats_are_written_as_display_writes_them() {
        let edges = [
            0.0,
            -0.0,
            1.0,
            -100.0,
            0.1,
            1e-5,
            1.5e-7,
            1e15,
            1e16,
            1e21,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1878.6240000000003,
            // An exact tie between two shortest candidates: Display rounds it up.
            -709_881_086_389_633.0 - 0.25,
        ];
        for x in edges {
            assert_eq!(fast(x), format!("{x}"), "{x:e}");
        }
        // Random bit patterns, and values shaped like measurements: a few decimals, and sums of
        // them at many magnitudes.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..300_000u64 {
            let r = next();
            let x = match i % 3 {
                0 => f64::from_bits(r),
                1 => {
                    let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
                    (unit * 2000.0 - 1000.0) * 10f64.powi((r & 31) as i32 - 12)
                }
                _ => (r % 100_000_000) as f64 / 10f64.powi((r >> 60) as i32 % 8),
            };
            assert_eq!(fast(x), format!("{x}"), "{x:e}");
        }
    }
}
