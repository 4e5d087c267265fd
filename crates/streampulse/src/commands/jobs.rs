//! `streampulse jobs list|submit|stop`: the jobs of a running platform over its REST API.
//!
//! `submit` sends a job definition written like the config file's `job:` section (YAML or JSON;
//! a whole config file works too, and only its `job:` section is sent), so a job can be tried
//! with `replay` and then run next to the configured one without restarting anything.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};

use super::client::ApiClient;
use super::table::{self, OutputFormat};

#[derive(clap::Subcommand)]
pub enum JobsCommand {
    /// Every job of the platform: state, events read, last checkpoint.
    List(ListArgs),
    /// Run another job over the platform's events (or resume a stopped one).
    Submit(SubmitArgs),
    /// Stop a job with a final checkpoint (optionally keeping a savepoint); its results stay.
    Stop(StopArgs),
}

#[derive(clap::Args)]
pub struct Target {
    /// Base URL of the running platform.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "STREAMPULSE_URL")]
    target: String,
    /// Bearer token (submit and stop need an admin token when auth is on).
    #[arg(long, env = "STREAMPULSE_TOKEN")]
    token: Option<String>,
}

impl Target {
    fn client(&self) -> ApiClient {
        ApiClient::new(&self.target, self.token.clone())
    }
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Start {
    /// The oldest event the log still holds.
    Earliest,
    /// Events ingested from now on.
    Latest,
}

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The job: YAML or JSON with the keys of the config file's `job:` section (or a config
    /// file, whose `job:` section is taken).
    file: PathBuf,
    /// Where a job without a checkpoint starts reading.
    #[arg(long, value_enum, default_value_t = Start::Earliest)]
    start: Start,
    /// Resume from this savepoint of the job instead of its latest checkpoint.
    #[arg(long)]
    from_savepoint: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// The job's name.
    name: String,
    /// Also keep its final state as this savepoint.
    #[arg(long)]
    savepoint: Option<String>,
    #[command(flatten)]
    target: Target,
}

pub fn run(command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List(args) => {
            let body = args.target.client().get("/jobs", &[])?;
            let rows: Vec<Value> = body["jobs"]
                .as_array()
                .map(|jobs| jobs.iter().map(summary).collect())
                .unwrap_or_default();
            let columns = ["job", "state", "partitions", "events", "last_checkpoint"];
            table::print(args.output, &columns, &rows)
        }
        JobsCommand::Submit(args) => {
            let job = read_job(&args.file)?;
            let mut body = json!({
                "job": job,
                "start": match args.start {
                    Start::Earliest => "earliest",
                    Start::Latest => "latest",
                },
            });
            if let Some(savepoint) = &args.from_savepoint {
                body["from_savepoint"] = savepoint.as_str().into();
            }
            let status = args.target.client().send("POST", "/jobs", Some(&body))?;
            println!("{}", summary(&status));
            Ok(())
        }
        JobsCommand::Stop(args) => {
            let mut path = format!("/jobs/{}", args.name);
            if let Some(savepoint) = &args.savepoint {
                path.push_str(&format!("?savepoint={savepoint}"));
            }
            let status = args.target.client().send("DELETE", &path, None)?;
            println!("{}", summary(&status));
            Ok(())
        }
    }
}

/// One line of a job's status: what a person wants to see first.
fn summary(status: &Value) -> Value {
    let partitions = status["partitions"].as_array().map_or(0, Vec::len);
    let events: u64 = status["partitions"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["events"].as_u64()).sum())
        .unwrap_or(0);
    json!({
        "job": status["job"],
        "state": status["state"],
        "partitions": partitions,
        "events": events,
        "last_checkpoint": status["last_checkpoint"]["id"],
    })
}

/// The job definition in `path`, as JSON.
fn read_job(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
    match doc.get("job") {
        Some(job) => {
            let others: Vec<&String> = doc
                .as_object()
                .map(|o| o.keys().filter(|k| *k != "job").collect())
                .unwrap_or_default();
            if !others.is_empty() {
                eprintln!(
                    "note: only the job: section of {} is submitted; {} belong to the running \
                     platform's own config",
                    path.display(),
                    others
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(job.clone())
        }
        None if doc.is_object() => Ok(doc),
        None => anyhow::bail!("{} must hold a job (a mapping)", path.display()),
    }
}
