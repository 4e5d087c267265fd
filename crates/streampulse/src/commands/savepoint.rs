//! `streampulse savepoint`: asks a running platform to write a named savepoint.

use super::client::ApiClient;

#[derive(clap::Args)]
pub struct SavepointArgs {
    /// Name of the savepoint (letters, digits, '_', '-', '.'); default: savepoint-<epoch ms>.
    #[arg(long)]
    name: Option<String>,
    /// Job to savepoint.
    #[arg(long, default_value = "default")]
    job: String,
    /// Base URL of the running platform.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "STREAMPULSE_URL")]
    target: String,
    /// Bearer token (an admin token when auth is on).
    #[arg(long, env = "STREAMPULSE_TOKEN")]
    token: Option<String>,
}

pub fn run(args: SavepointArgs) -> anyhow::Result<()> {
    let body = match &args.name {
        Some(name) => serde_json::json!({ "name": name }),
        None => serde_json::json!({}),
    };
    let written = ApiClient::new(&args.target, args.token).send(
        "POST",
        &format!("/jobs/{}/savepoints", args.job),
        Some(&body),
    )?;
    println!("{written}");
    Ok(())
}
