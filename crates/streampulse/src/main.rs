//! The `streampulse` command: run the platform, replay a file through a job, produce test events,
//! take savepoints, manage and query the jobs of a running platform.

mod commands;
mod config;
mod lines;
mod otel;
mod result_store;
mod results_writer;
mod store_retention;

use clap::{Parser, Subcommand, ValueEnum};

/// jemalloc: the partition threads, the log writer and the request threads allocate and free
/// the stores' cached pages and the ingest buffers across threads, and glibc's per-thread arenas
/// kept each thread's high-water mark (README "Operations", memory; BENCHMARKS (l)).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "streampulse",
    version,
    about = "Event-time windowed analytics over JSON events, exactly-once"
)]
struct Cli {
    /// Log output format; default: `logging.format` of `run`'s config, else text. The level
    /// comes from RUST_LOG, else `logging.level`, else info.
    #[arg(long, global = true, value_enum, env = "STREAMPULSE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: HTTP ingest and API, embedded log, engine, embedded store.
    Run(commands::run::RunArgs),
    /// Serve the API alone over the shared Cassandra store, for the jobs that Kafka workers run.
    Serve(commands::serve::ServeArgs),
    /// Run a job over a file as a bounded stream and write its window results.
    Replay(commands::replay::ReplayArgs),
    /// Send synthetic events (noise, spikes, out-of-order and late events) to a running platform.
    Produce(commands::produce::ProduceArgs),
    /// Ask a running platform to write a named savepoint.
    Savepoint(commands::savepoint::SavepointArgs),
    /// List, submit and stop the jobs of a running platform.
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCommand),
    /// Query a running platform: window results or alerts, as a table or JSON.
    #[command(subcommand)]
    Query(commands::query::QueryCommand),
    /// Follow a running platform's WebSocket: results and alerts as they are stored.
    Tail(commands::tail::TailArgs),
    /// Manage the Kafka topics a job reads and writes.
    #[command(subcommand)]
    Topics(commands::topics::TopicsCommand),
    /// Validate a configuration file as `run` would, without starting anything.
    CheckConfig(commands::check_config::CheckConfigArgs),
    /// Manage the result store: create the Cassandra keyspace and tables.
    #[command(subcommand)]
    Store(commands::store::StoreCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let json = cli.log_format.map(|f| matches!(f, LogFormat::Json));
    let command = match cli.command {
        // `run` installs the subscriber itself, once its config says whether traces are exported.
        Command::Run(args) => return commands::run::run(args, json),
        Command::Serve(args) => return commands::serve::run(args, json),
        other => other,
    };
    let _guard = otel::init(json.unwrap_or(false), "info", None);
    match command {
        Command::Run(_) | Command::Serve(_) => unreachable!("handled above"),
        Command::Replay(args) => commands::replay::run(args),
        Command::Produce(args) => commands::produce::run(args),
        Command::Savepoint(args) => commands::savepoint::run(args),
        Command::Jobs(command) => commands::jobs::run(command),
        Command::Query(command) => commands::query::run(command),
        Command::Tail(args) => commands::tail::run(args),
        Command::Topics(command) => commands::topics::run(command),
        Command::CheckConfig(args) => commands::check_config::run(args),
        Command::Store(command) => commands::store::run(command),
    }
}
