//! `streampulse savepoint`: asks a running platform to write a named savepoint.

#[derive(clap::Args)]
pub struct SavepointArgs {
    /// Name of the savepoint (letters, digits, '_', '-', '.'); default: savepoint-<epoch ms>.
    #[arg(long)]
    name: Option<String>,
    /// Job to savepoint.
    #[arg(long, default_value = "default")]
    job: String,
    /// Base URL of the running platform.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
}

pub fn run(args: SavepointArgs) -> anyhow::Result<()> {
    let url = format!(
        "{}/jobs/{}/savepoints",
        args.target.trim_end_matches('/'),
        args.job
    );
    let body = match &args.name {
        Some(name) => serde_json::json!({ "name": name }),
        None => serde_json::json!({}),
    };
    let mut response = ureq::post(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(&body)
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}; is 'streampulse run' running?"))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("savepoint failed ({status}): {text}");
    }
    println!("{text}");
    Ok(())
}
