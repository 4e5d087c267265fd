//! `streampulse query metrics|alerts`: read a running platform's results or alerts over its REST
//! API and print them as a table (default) or JSON lines. Follows pagination cursors when the
//! server returns them, so a long range is printed whole.

use std::time::Duration;
use streampulse_core::clock::now_ms;

use serde_json::Value;

use super::client::ApiClient;
use super::table::{self, OutputFormat};

#[derive(clap::Subcommand)]
pub enum QueryCommand {
    /// Window results whose start lies in the time range.
    Metrics(MetricsArgs),
    /// Alerts whose episode overlaps the time range.
    Alerts(AlertsArgs),
}

#[derive(clap::Args)]
pub struct Common {
    /// Start of the range, as a duration back from now (`15m`, `2h`).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    since: Duration,
    /// Base URL of the running platform.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "STREAMPULSE_URL")]
    target: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "STREAMPULSE_TOKEN")]
    token: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    /// Most rows to print.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Which job's results (`streampulse jobs list`); default: the job of the platform's config.
    #[arg(long)]
    job: Option<String>,
}

#[derive(clap::Args)]
pub struct MetricsArgs {
    /// Metric id (a glob such as `cpu.*` where the server supports it).
    #[arg(long)]
    metric: Option<String>,
    /// Window name.
    #[arg(long)]
    window: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
pub struct AlertsArgs {
    #[arg(long)]
    metric: Option<String>,
    /// firing or resolved.
    #[arg(long)]
    state: Option<String>,
    /// warning or critical (exactly).
    #[arg(long)]
    severity: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub fn run(command: QueryCommand) -> anyhow::Result<()> {
    match command {
        QueryCommand::Metrics(args) => {
            let filters = [("metric_id", args.metric), ("window", args.window)];
            let rows = fetch(&args.common, "/metrics", "results", &filters)?;
            let columns = [
                "metric_id",
                "window",
                "window_start",
                "count",
                "mean",
                "min",
                "max",
                "revision",
            ];
            table::print(args.common.output, &columns, &rows)
        }
        QueryCommand::Alerts(args) => {
            let filters = [
                ("metric_id", args.metric),
                ("state", args.state),
                ("severity", args.severity),
            ];
            let rows = fetch(&args.common, "/alerts", "alerts", &filters)?;
            let columns = [
                "id",
                "metric_id",
                "detector",
                "state",
                "severity",
                "first_ts",
                "peak_score",
                "observed",
                "expected",
            ];
            table::print(args.common.output, &columns, &rows)
        }
    }
}

/// GETs `path` over [now − since, now), following `next_cursor`, up to `limit` rows.
fn fetch(
    common: &Common,
    path: &str,
    field: &str,
    filters: &[(&str, Option<String>)],
) -> anyhow::Result<Vec<Value>> {
    let end = now_ms();
    let start = end - common.since.as_millis() as i64;
    let client = ApiClient::new(&common.target, common.token.clone());
    let mut rows: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = (common.limit - rows.len()).clamp(1, 10_000);
        let mut query = vec![
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("limit", page.to_string()),
        ];
        let job = ("job", common.job.clone());
        for (name, value) in filters.iter().chain([&job]) {
            if let Some(v) = value {
                query.push((*name, v.clone()));
            }
        }
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let body = client.get(path, &query)?;
        rows.extend(body[field].as_array().cloned().unwrap_or_default());
        cursor = body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() || rows.len() >= common.limit {
            break;
        }
    }
    rows.truncate(common.limit);
    Ok(rows)
}
