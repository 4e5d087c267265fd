//! `streampulse topics create`: the Kafka topics a job needs, from its configuration.
//!
//! The events topic's partition count is the job's unit of parallelism: at most that many
//! workers share the work, and it cannot shrink later without re-keying. The dead-letter, result
//! and alert topics get the same count (they are keyed by metric too).

use std::path::PathBuf;

use anyhow::Context;
use streampulse_kafka::admin::{create_topics, job_topics, TopicOutcome};

use crate::config::AppConfig;

#[derive(clap::Subcommand)]
pub enum TopicsCommand {
    /// Create the job's topics (events, dead letters, and results/alerts when configured);
    /// existing topics are left as they are.
    Create(CreateArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Configuration file whose `kafka:` section names the topics.
    #[arg(long, env = "STREAMPULSE_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `kafka.brokers`.
    #[arg(long)]
    brokers: Option<String>,
    /// Overrides `kafka.topic` (the events topic).
    #[arg(long)]
    topic: Option<String>,
    /// Partitions per topic: the most workers that can share the job.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    replication: i32,
}

pub fn run(command: TopicsCommand) -> anyhow::Result<()> {
    let TopicsCommand::Create(args) = command;
    let mut kafka = AppConfig::load(args.config.as_deref())?.config.kafka;
    if let Some(brokers) = args.brokers {
        kafka.brokers = brokers;
    }
    if let Some(topic) = args.topic {
        kafka.topic = topic;
    }
    if !kafka.enabled() {
        anyhow::bail!("no brokers: pass --brokers or set kafka.brokers in the config");
    }
    if args.partitions < 1 || args.replication < 1 {
        anyhow::bail!("--partitions and --replication must be at least 1");
    }
    let topics = job_topics(&kafka, args.partitions);
    let outcomes = create_topics(&kafka, &topics, args.replication)
        .with_context(|| format!("cannot create topics on {}", kafka.brokers))?;
    let mut failed = 0;
    for (name, outcome) in outcomes {
        match outcome {
            TopicOutcome::Created => println!("created {name} ({} partitions)", args.partitions),
            TopicOutcome::AlreadyExists => println!("exists  {name}"),
            TopicOutcome::Failed(reason) => {
                failed += 1;
                eprintln!("failed  {name}: {reason}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} topic(s) could not be created");
    }
    Ok(())
}
