//! `streampulse replay`: a job over a file, as a bounded stream.
//!
//! The events are read in file order, routed to partitions as the embedded log would route them,
//! and processed by the same pipeline as `run`; at the end of the input the watermark goes to +∞
//! (Flink's bounded mode), so every window fires. Used to test a job before deploying it, for
//! backfills, and by the Flink parity test. Lines that are not valid events are reported on stderr
//! with their line numbers, never dropped silently.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use streampulse_core::event::EventError;
use streampulse_core::output::Output;
use streampulse_core::pipeline::PartitionPipeline;

use crate::config::AppConfig;
use crate::lines::{Line, Lines};
use crate::results_writer::ResultWriter;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Configuration file (its `job` and `log.partitions` are used); defaults apply without it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Events, one JSON object per line; `.gz` is decompressed; `-` reads stdin.
    #[arg(long)]
    input: PathBuf,
    /// Where to write window results: `.csv`, `.ndjson`/`.jsonl`, or `-` for CSV on stdout.
    #[arg(long, default_value = "-")]
    output: PathBuf,
    /// Also write events that missed every window (the late output) here, as NDJSON.
    #[arg(long)]
    late_output: Option<PathBuf>,
    /// Also write every alert transition here, as NDJSON.
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Overrides `log.partitions` (one watermark per partition).
    #[arg(long)]
    partitions: Option<u32>,
}

/// Counts reported at the end of a replay.
#[derive(Debug, Default)]
struct Summary {
    events: u64,
    rejected: u64,
    results: u64,
    late: u64,
    alert_transitions: u64,
}

const MAX_REPORTED_REJECTIONS: u64 = 20;

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let validated = AppConfig::load(args.config.as_deref())?;
    let job = validated.job;
    let partitions = args
        .partitions
        .unwrap_or(validated.config.log.partitions)
        .max(1);

    // Lines are kept up to an event's size limit: a longer one is rejected like any bad line.
    let mut input = Lines::new(open_input(&args.input)?, job.event.max_event_bytes);
    let mut sinks = Sinks {
        results: ResultWriter::create(&args.output, &job)?,
        late: args.late_output.as_deref().map(create).transpose()?,
        alerts: args.alerts.as_deref().map(create).transpose()?,
        summary: Summary::default(),
    };

    let mut pipelines: Vec<PartitionPipeline> = (0..partitions)
        .map(|_| PartitionPipeline::new(&job))
        .collect();
    let mut offsets = vec![0u64; partitions as usize];
    let mut outputs = Vec::new();
    let mut lines = 0u64;

    while let Some(line) = input
        .next_line()
        .with_context(|| format!("cannot read {}", args.input.display()))?
    {
        lines += 1;
        let parsed = match line {
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => job.event.parse_ref(text),
            Line::NotUtf8(e) => Err(EventError::Json(format!("not UTF-8: {e}"))),
            Line::TooLong(len) => Err(job.event.too_large(len)),
        };
        let event = match parsed {
            Ok(event) => event,
            Err(reason) => {
                sinks.summary.rejected += 1;
                if sinks.summary.rejected <= MAX_REPORTED_REJECTIONS {
                    eprintln!("line {lines}: rejected: {reason}");
                }
                continue;
            }
        };
        sinks.summary.events += 1;
        let p = streampulse_log::partition_for(&event.metric_id, partitions) as usize;
        pipelines[p].process_tagged(
            &event.metric_id,
            || event.tags(),
            event.ts,
            event.value,
            offsets[p],
            &mut outputs,
        );
        offsets[p] += 1;
        sinks.write(&mut outputs)?;
    }
    for pipeline in &mut pipelines {
        pipeline.finish(&mut outputs);
        sinks.write(&mut outputs)?;
    }
    sinks.finish()
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::new(file))
}

fn open_input(path: &PathBuf) -> anyhow::Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(path).with_context(|| format!("cannot open input {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        ))))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

/// Where a replay's outputs go.
struct Sinks {
    results: ResultWriter,
    late: Option<BufWriter<File>>,
    alerts: Option<BufWriter<File>>,
    summary: Summary,
}

impl Sinks {
    fn write(&mut self, outputs: &mut Vec<Output>) -> anyhow::Result<()> {
        for output in outputs.drain(..) {
            match output {
                Output::Result(result) => {
                    self.summary.results += 1;
                    self.results.write(&result)?;
                }
                // A replay writes rows as they are emitted; a superseded session row stays in the
                // file and its replacement follows with a higher revision.
                Output::Retract { .. } => {}
                // The catalog serves tag filters in the store; a replay file has no use for it.
                Output::Metric { .. } => {}
                // The input file is the raw data of a replay: nothing to add to it.
                Output::Raw(_) => {}
                Output::Late(late) => {
                    self.summary.late += 1;
                    if let Some(w) = self.late.as_mut() {
                        write_line(w, &late)?;
                    }
                }
                Output::Alert(alert) => {
                    self.summary.alert_transitions += 1;
                    if let Some(w) = self.alerts.as_mut() {
                        write_line(w, &alert)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.results.finish()?;
        for w in [self.late.as_mut(), self.alerts.as_mut()]
            .into_iter()
            .flatten()
        {
            w.flush()?;
        }
        let s = &self.summary;
        eprintln!(
            "replay: {} events ({} lines rejected), {} window results, {} late events, {} alert transitions",
            s.events, s.rejected, s.results, s.late, s.alert_transitions
        );
        Ok(())
    }
}

fn write_line(w: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *w, value)?;
    w.write_all(b"\n")?;
    Ok(())
}
