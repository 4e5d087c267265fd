//! `streampulse tail`: follow the WebSocket of a running platform and print results and alerts as
//! they are stored, one line each (a table row, or the JSON message with `--output json`).

use anyhow::Context;
use serde_json::Value;
use tungstenite::Message;

use super::table::{cell, OutputFormat};

#[derive(clap::Args)]
pub struct TailArgs {
    /// Metric id globs, comma-separated (`cpu.*,mem.*`); default: all.
    #[arg(long)]
    metrics: Option<String>,
    /// Window names, comma-separated; default: all.
    #[arg(long)]
    windows: Option<String>,
    /// Do not print alert transitions.
    #[arg(long)]
    no_alerts: bool,
    /// Do not print window results.
    #[arg(long)]
    no_results: bool,
    /// Which job to follow (`streampulse jobs list`); default: the job of the platform's config.
    #[arg(long)]
    job: Option<String>,
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "STREAMPULSE_URL")]
    target: String,
    #[arg(long, env = "STREAMPULSE_TOKEN")]
    token: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

pub fn run(args: TailArgs) -> anyhow::Result<()> {
    let mut query = vec![
        format!("alerts={}", !args.no_alerts),
        format!("results={}", !args.no_results),
    ];
    if let Some(m) = &args.metrics {
        query.push(format!("metrics={m}"));
    }
    if let Some(w) = &args.windows {
        query.push(format!("windows={w}"));
    }
    if let Some(job) = &args.job {
        query.push(format!("job={job}"));
    }
    let base = args
        .target
        .trim_end_matches('/')
        .replacen("http://", "ws://", 1);
    let url = format!("{base}/ws?{}", query.join("&"));
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url.as_str())
        .with_context(|| format!("invalid target {url}"))?;
    if let Some(token) = &args.token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (mut socket, _) = tungstenite::connect(request)
        .with_context(|| format!("cannot connect to {url}; is 'streampulse run' running?"))?;
    loop {
        let text = match socket.read().context("the connection ended")? {
            Message::Text(text) => text,
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match args.output {
            OutputFormat::Json => println!("{text}"),
            OutputFormat::Table => {
                if let Some(line) = render(&message) {
                    println!("{line}");
                }
            }
        }
    }
}

fn render(m: &Value) -> Option<String> {
    let fields = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{n}={}", cell(&m[*n])))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match m["type"].as_str()? {
        "result" => Some(format!(
            "result {}",
            fields(&[
                "metric_id",
                "window",
                "window_start",
                "count",
                "mean",
                "min",
                "max",
                "revision"
            ])
        )),
        "alert" => Some(format!(
            "ALERT  {}",
            fields(&[
                "state",
                "severity",
                "metric_id",
                "detector",
                "peak_score",
                "observed",
                "expected",
                "id"
            ])
        )),
        "lagged" => Some(format!("lagged: {} messages skipped", cell(&m["skipped"]))),
        "subscribed" => Some(format!("subscribed {}", m["subscription"])),
        "error" => Some(format!("error: {}", cell(&m["detail"]))),
        _ => None,
    }
}
