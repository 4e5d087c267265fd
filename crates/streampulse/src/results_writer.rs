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
        let mut writer = Self::Csv { out, extra };
        writer.write_header()?;
        Ok(writer)
    }

    fn write_header(&mut self) -> anyhow::Result<()> {
        if let Self::Csv { out, extra } = self {
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
            Self::Csv { out, extra } => {
                write!(
                    out,
                    "{},{},{},{},{},{},{},{},{}",
                    csv_field(&r.metric_id),
                    csv_field(&r.window),
                    r.window_start,
                    r.window_end,
                    r.count,
                    r.sum,
                    r.min,
                    r.max,
                    r.mean
                )?;
                for &kind in extra.iter() {
                    match r.get(kind) {
                        Some(v) => write!(out, ",{v}")?,
                        None => write!(out, ",")?,
                    }
                }
                writeln!(out, ",{}", r.revision)?;
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
