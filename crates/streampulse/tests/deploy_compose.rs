//! The Compose files (`docker-compose.yml`, `docker-compose.embedded.yml`) against the rest of
//! the repository, statically (no container engine runs here).
//!
//! `deploy/compose/check` (Go, with the Go of `STREAMPULSE_TEST_GO`) loads each file as
//! `docker compose` does (compose-go: the Compose specification's JSON schema, merge keys,
//! interpolation, every profile) and prints the normalized model; then: every file a service
//! mounts exists; every StreamPulse config mounted passes `streampulse check-config`, names only
//! services of the file (brokers, Cassandra, OTLP), keeps its data and checkpoints where the image
//! and the volumes put them; the healthchecks a `service_healthy` waits for exist; only the API,
//! Grafana and Jaeger are published, on loopback; every Prometheus target and Grafana data source
//! is a service of the file on the right port; and the Dockerfile's user, ports, volume and
//! entrypoint agree. Without the variable the test prints "skipped" and passes, unless `CI` is
//! set: then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod image_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Each Compose file's normalized model, by file name.
fn load(go: &Path) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let checker = dir.path().join("check");
    let out = Command::new(go)
        .args(["build", "-o"])
        .arg(&checker)
        .arg(".")
        .current_dir(repo().join("deploy/compose/check"))
        .env("GOFLAGS", "-buildvcs=false")
        .output()
        .expect("go build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&checker)
        .arg(repo().join("docker-compose.yml"))
        .arg(repo().join("docker-compose.embedded.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not valid Compose: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The host path mounted at `target` in `service`, if any.
fn bind_source(service: &Value, target: &str) -> Option<PathBuf> {
    service["volumes"].as_array()?.iter().find_map(|v| {
        (v["type"] == "bind" && v["target"] == target)
            .then(|| PathBuf::from(v["source"].as_str().unwrap()))
    })
}

/// The port of a `host:port` or `scheme://host:port[/...]` address, and its host.
fn host_port(address: &str) -> (String, u16) {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let rest = rest.split('/').next().unwrap();
    let (host, port) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {address}"));
    (host.to_string(), port.parse().unwrap())
}

/// Whether a Compose service runs a StreamPulse job (the workers, the embedded process), not a
/// one-shot command of the image.
fn runs_job(service: &Value) -> bool {
    service["image"] == "streampulse:local"
        && service["environment"]["STREAMPULSE_CONFIG"].is_string()
}

#[test]
fn compose_files_agree_with_the_repository() {
    let Some(go) = streampulse_testkit::env::required_file(
        "STREAMPULSE_TEST_GO",
        "the go command (its path, e.g. $(command -v go))",
    ) else {
        return;
    };
    let projects = load(&go);
    let image = image_support::runtime_stage();
    let (exposed, image_volumes) = (&image.exposed, &image.volumes);
    assert_eq!(
        image.user, "10001:10001",
        "the image runs as a fixed non-root user"
    );
    assert!(image
        .entrypoint
        .ends_with(&["/usr/local/bin/streampulse".to_string()]));
    for (file, project) in &projects {
        let services = project["services"].as_object().unwrap();
        let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
        let mut published = BTreeSet::new();
        for (name, service) in services {
            let at = format!("{file}: service {name}");
            for v in service["volumes"].as_array().into_iter().flatten() {
                if v["type"] == "bind" {
                    let source = Path::new(v["source"].as_str().unwrap());
                    assert!(
                        source.exists(),
                        "{at} mounts {} that does not exist",
                        source.display()
                    );
                }
            }
            for p in service["ports"].as_array().into_iter().flatten() {
                assert_eq!(
                    p["host_ip"], "127.0.0.1",
                    "{at} publishes beyond loopback: {p}"
                );
                published.insert(p["target"].as_u64().unwrap());
            }
            for (needed, dep) in service["depends_on"].as_object().into_iter().flatten() {
                if dep["condition"] == "service_healthy" {
                    assert!(
                        services[needed]["healthcheck"]["test"].is_array(),
                        "{at} waits for {needed} to be healthy, which has no healthcheck"
                    );
                }
            }
            if service["image"] != "streampulse:local" {
                continue;
            }
            // A StreamPulse service: its config, through its mount.
            let config_path = service["environment"]["STREAMPULSE_CONFIG"]
                .as_str()
                .or_else(|| {
                    let command = service["command"].as_array()?;
                    let i = command.iter().position(|c| c == "--config")?;
                    command[i + 1].as_str()
                })
                .unwrap_or_else(|| panic!("{at} names no config"));
            let source = bind_source(service, config_path)
                .unwrap_or_else(|| panic!("{at}: nothing mounted at {config_path}"));
            let check = support::check_config(&source, &[]);
            assert!(
                check.status.success(),
                "{at}: {} fails check-config: {}",
                source.display(),
                String::from_utf8_lossy(&check.stderr)
            );
            let config = yaml(&source);
            let data_dir = config["data_dir"].as_str().unwrap();
            assert!(
                image_volumes.iter().any(|v| v == data_dir),
                "{at}: data_dir {data_dir} is not the image's volume {image_volumes:?}"
            );
            let mut addresses: Vec<String> = Vec::new();
            if let Some(brokers) = config["kafka"]["brokers"].as_str() {
                addresses.extend(brokers.split(',').map(str::to_string));
            }
            for c in config["store"]["cassandra"]["contact_points"]
                .as_array()
                .into_iter()
                .flatten()
            {
                addresses.push(c.as_str().unwrap().to_string());
            }
            if let Some(otlp) = config["tracing"]["otlp_endpoint"].as_str() {
                addresses.push(otlp.to_string());
            }
            for address in addresses {
                let (host, _) = host_port(&address);
                assert!(
                    names.contains(host.as_str()),
                    "{at}: {address} is not a service of {file}"
                );
            }
            for key in ["server", "metrics"] {
                let (_, port) = host_port(config[key]["listen"].as_str().unwrap());
                assert!(
                    exposed.contains(&port),
                    "{at}: {key}.listen port {port} is not EXPOSEd"
                );
            }
            if let Some(dir) = config["checkpoint"]["storage"]
                .as_str()
                .and_then(|s| s.strip_prefix("file://"))
                .filter(|_| runs_job(service))
            {
                // Per-partition checkpoints move between workers: one named volume for all.
                let volume = service["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["target"] == dir && v["type"] == "volume")
                    .unwrap_or_else(|| panic!("{at}: no named volume at the checkpoints {dir}"));
                for (other, s) in services.iter().filter(|(_, s)| runs_job(s)) {
                    assert!(
                        s["volumes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|v| v["source"] == volume["source"] && v["target"] == dir),
                        "{file}: {other} does not share the checkpoint volume"
                    );
                }
            }
        }
        assert_eq!(
            published,
            BTreeSet::from([8080, 3000, 16686]),
            "{file}: only the API, Grafana and Jaeger's UI are published"
        );

        // Prometheus scrapes services of the file on their metrics.listen port, with its rules.
        let prometheus = &services["prometheus"];
        let config = bind_source(prometheus, "/etc/prometheus/prometheus.yml").unwrap();
        let scrape = yaml(&config);
        for rules in scrape["rule_files"].as_array().unwrap() {
            let target = format!("/etc/prometheus/{}", rules.as_str().unwrap());
            assert!(
                bind_source(prometheus, &target).is_some(),
                "{file}: {target} is not mounted"
            );
        }
        let mut scraped = BTreeSet::new();
        for job in scrape["scrape_configs"].as_array().unwrap() {
            for sc in job["static_configs"].as_array().unwrap() {
                for t in sc["targets"].as_array().unwrap() {
                    let (host, port) = host_port(t.as_str().unwrap());
                    let service = services
                        .get(&host)
                        .unwrap_or_else(|| panic!("{file}: Prometheus target {t} is no service"));
                    let config =
                        yaml(&bind_source(service, "/etc/streampulse/streampulse.yaml").unwrap());
                    assert_eq!(
                        host_port(config["metrics"]["listen"].as_str().unwrap()).1,
                        port,
                        "{t}"
                    );
                    scraped.insert(host);
                }
            }
        }
        let runs: BTreeSet<String> = services
            .iter()
            .filter(|(_, s)| runs_job(s))
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(
            scraped, runs,
            "{file}: Prometheus scrapes every StreamPulse process"
        );

        // Grafana's data source is the Prometheus service.
        let datasources = yaml(
            &bind_source(
                &services["grafana"],
                "/etc/grafana/provisioning/datasources/prometheus.yml",
            )
            .unwrap(),
        );
        for ds in datasources["datasources"].as_array().unwrap() {
            let (host, port) = host_port(ds["url"].as_str().unwrap());
            assert_eq!((host.as_str(), port), ("prometheus", 9090), "{file}: {ds}");
        }
    }
}
