//! `streampulse query metrics|alerts`: read a running platform's results or alerts over its REST
//! API and print them as a table (default) or JSON lines. Follows pagination cursors when the
//! server returns them, so a long range is printed whole.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = common.target.trim_end_matches('/');
    let mut rows: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = (common.limit - rows.len()).clamp(1, 10_000);
        let mut request = agent
            .get(&format!("{base}{path}"))
            .query("start", start.to_string())
            .query("end", end.to_string())
            .query("limit", page.to_string());
        for (name, value) in filters {
            if let Some(v) = value {
                request = request.query(*name, v);
            }
        }
        if let Some(c) = &cursor {
            request = request.query("cursor", c);
        }
        if let Some(token) = &common.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut response = request
            .call()
            .with_context(|| format!("cannot reach {base}{path}; is 'streampulse run' running?"))?;
        let status = response.status();
        let body: Value = response
            .body_mut()
            .read_json()
            .context("the server's answer is not JSON")?;
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("no detail");
            anyhow::bail!("{path} answered {status}: {detail}");
        }
        rows.extend(body[field].as_array().cloned().unwrap_or_default());
        cursor = body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() || rows.len() >= common.limit {
            break;
        }
    }
    rows.truncate(common.limit);
    Ok(rows)
}
