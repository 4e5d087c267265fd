//! The Helm chart `deploy/helm/streampulse`, with the helm of `STREAMPULSE_TEST_HELM` (`.ci/run`
//! builds it from its Go module): `helm lint` and `helm template` for every values file of the
//! chart's `ci/` (embedded mode, cluster mode on an object store with the Prometheus Operator
//! objects, cluster mode on a shared volume with an existing token Secret); each rendered config
//! passes `streampulse check-config`; the objects agree with each other and with the binary (ports,
//! probes, mounts, Secrets, hooks, replicas, the alerting rules) and with the image the
//! `Dockerfile` builds (its user and group, exposed ports, volume, entrypoint); with
//! `STREAMPULSE_TEST_KUBERNETES_VALIDATE` every rendered object the Kubernetes API defines is
//! checked against its schema in strict mode. Without the variables the test prints "skipped"
//! and passes, unless `CI` is set: then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod image_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/streampulse")
}

fn helm(helm: &Path, args: &[&str]) -> String {
    let out = Command::new(helm).args(args).output().expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The documents of a rendered chart.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn port_of(listen: &str) -> u64 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

/// Checks a config file through the binary; returns it parsed.
fn check_config(dir: &Path, name: &str, text: &str) -> Value {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = support::check_config(&path, &[]);
    assert!(
        out.status.success(),
        "{name} fails check-config: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn the_chart_renders_consistent_objects_for_every_mode() {
    let Some(helm_bin) = streampulse_testkit::env::required_file(
        "STREAMPULSE_TEST_HELM",
        "a helm executable (go install helm.sh/helm/v4/cmd/helm@v4.3.2)",
    ) else {
        return;
    };
    let validate = streampulse_testkit::env::required_file(
        "STREAMPULSE_TEST_KUBERNETES_VALIDATE",
        "a kubernetes-validate executable (pip install kubernetes-validate==1.37.0)",
    );
    let chart = chart();
    let chart_arg = chart.to_str().unwrap();
    let image = image_support::runtime_stage();
    let dir = tempfile::tempdir().unwrap();
    let alerts: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();

    for values in [
        "embedded-values.yaml",
        "cluster-values.yaml",
        "cluster-shared-volume-values.yaml",
    ] {
        let values_path = chart.join("ci").join(values);
        let values_arg = values_path.to_str().unwrap();
        helm(
            &helm_bin,
            &["lint", "--strict", chart_arg, "-f", values_arg],
        );
        let rendered = helm(&helm_bin, &["template", "sp", chart_arg, "-f", values_arg]);
        let docs = documents(&rendered);
        let given: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&values_path).unwrap()).unwrap();
        let cluster = given["mode"] == "cluster";

        let config_map = find(&docs, "ConfigMap", "sp-streampulse").expect("the config");
        let config = check_config(
            dir.path(),
            values,
            config_map["data"]["streampulse.yaml"].as_str().unwrap(),
        );
        assert_eq!(config["kafka"]["brokers"].is_string(), cluster, "{values}");
        assert_eq!(
            config["store"]["backend"] == "cassandra",
            cluster,
            "{values}"
        );

        let set = find(&docs, "StatefulSet", "sp-streampulse").expect("the workload");
        let spec = &set["spec"];
        let expected_replicas = if cluster {
            given["replicas"].as_u64().unwrap_or(3)
        } else {
            1
        };
        assert_eq!(
            spec["replicas"].as_u64(),
            Some(expected_replicas),
            "{values}"
        );
        let pod = &spec["template"]["spec"];
        let container = &pod["containers"][0];
        let ports: Vec<(String, u64)> = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["containerPort"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(ports.contains(&(
            "http".into(),
            port_of(config["server"]["listen"].as_str().unwrap())
        )));
        assert!(ports.contains(&(
            "metrics".into(),
            port_of(config["metrics"]["listen"].as_str().unwrap())
        )));
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("livenessProbe", "/healthz"),
        ] {
            assert_eq!(
                container[probe]["httpGet"]["path"], path,
                "{values}: {probe}"
            );
            assert_eq!(
                container[probe]["httpGet"]["port"], "http",
                "{values}: {probe}"
            );
        }
        let mounts = container["volumeMounts"].as_array().unwrap();
        let mounted = |path: &str| mounts.iter().any(|m| m["mountPath"] == path);
        assert!(
            mounted(config["data_dir"].as_str().unwrap()),
            "{values}: data_dir is not on the volume"
        );
        // The image as the Dockerfile builds it: its user, ports, volume and entrypoint.
        let (uid, gid) = image.uid_gid();
        for job_pod in std::iter::once(pod).chain(
            of_kind(&docs, "Job")
                .into_iter()
                .map(|j| &j["spec"]["template"]["spec"]),
        ) {
            let security = &job_pod["securityContext"];
            assert_eq!(security["runAsUser"].as_u64(), Some(uid), "{values}");
            assert_eq!(security["runAsGroup"].as_u64(), Some(gid), "{values}");
            assert_eq!(security["fsGroup"].as_u64(), Some(gid), "{values}");
            let containers = job_pod["containers"].as_array().unwrap().iter();
            let init = job_pod["initContainers"].as_array().into_iter().flatten();
            for c in containers.chain(init) {
                // The image's entrypoint (tini, then the binary) runs the container's args.
                assert!(c["command"].is_null(), "{values}: {c}");
                assert!(c["args"][0].is_string(), "{values}: {c}");
            }
        }
        for (_, port) in &ports {
            assert!(
                image.exposed.contains(&(*port as u16)),
                "{values}: port {port} is not one the image exposes ({:?})",
                image.exposed
            );
        }
        assert!(
            image.volumes.iter().any(|v| v == &config["data_dir"]),
            "{values}: data_dir is not the image's volume {:?}",
            image.volumes
        );
        let env = container["env"].as_array().unwrap();
        let env_value = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
        let config_path = env_value("STREAMPULSE_CONFIG").unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(mounted(
            Path::new(&config_path).parent().unwrap().to_str().unwrap()
        ));
        // Token variables read a Secret that the chart renders or that the values name.
        let secret = env_value("STREAMPULSE_ADMIN_TOKENS").unwrap()["valueFrom"]["secretKeyRef"]
            ["name"]
            .as_str()
            .unwrap()
            .to_string();
        match given["auth"]["existingSecret"].as_str() {
            Some(existing) => {
                assert_eq!(secret, existing);
                assert!(
                    of_kind(&docs, "Secret").is_empty(),
                    "{values}: no Secret to generate"
                );
            }
            None => {
                let s = find(&docs, "Secret", &secret)
                    .unwrap_or_else(|| panic!("{values}: no Secret {secret}"));
                for key in ["read_tokens", "write_tokens", "admin_tokens"] {
                    assert!(
                        s["data"][key].as_str().is_some_and(|t| t.len() >= 40),
                        "{values}: {key}"
                    );
                }
            }
        }
        // Checkpoints: an object store, or one ReadWriteMany claim every worker mounts.
        let storage = config["checkpoint"]["storage"].as_str().unwrap_or_default();
        if let Some(dir) = storage.strip_prefix("file://") {
            assert!(
                mounted(dir),
                "{values}: the checkpoint directory is not mounted"
            );
            let claim = of_kind(&docs, "PersistentVolumeClaim");
            assert_eq!(claim.len(), 1, "{values}");
            assert_eq!(claim[0]["spec"]["accessModes"][0], "ReadWriteMany");
        }
        assert_eq!(
            of_kind(&docs, "PodDisruptionBudget").len(),
            usize::from(cluster),
            "{values}"
        );
        let hooks: Vec<&Value> = docs
            .iter()
            .filter(|d| d["metadata"]["annotations"]["helm.sh/hook"].is_string())
            .collect();
        if cluster {
            let job = hooks
                .iter()
                .find(|d| d["kind"] == "Job")
                .expect("the init Job");
            let job_pod = &job["spec"]["template"]["spec"];
            assert_eq!(job_pod["initContainers"][0]["args"][0], "topics");
            assert_eq!(job_pod["containers"][0]["args"][0], "store");
            let hook_config = hooks
                .iter()
                .find(|d| d["kind"] == "ConfigMap")
                .expect("the init config");
            assert_eq!(
                hook_config["data"], config_map["data"],
                "the init Job runs the workers' config"
            );
        } else {
            assert!(hooks.is_empty(), "{values}: no init Job in embedded mode");
        }
        if let Some(rule) = of_kind(&docs, "PrometheusRule").first() {
            assert_eq!(
                rule["spec"]["groups"], alerts["groups"],
                "the rules of deploy/prometheus/alerts.yml"
            );
            let monitor = of_kind(&docs, "ServiceMonitor");
            assert_eq!(monitor[0]["spec"]["endpoints"][0]["port"], "metrics");
        }

        if let Some(validate) = &validate {
            // The Prometheus Operator's kinds are not in the Kubernetes schemas.
            let core: Vec<&Value> = docs
                .iter()
                .filter(|d| {
                    !["ServiceMonitor", "PrometheusRule"].contains(&d["kind"].as_str().unwrap())
                })
                .collect();
            let path = dir.path().join(format!("rendered-{values}"));
            let text: String = core
                .iter()
                .map(|d| format!("---\n{}", serde_yaml_ng::to_string(d).unwrap()))
                .collect();
            std::fs::write(&path, text).unwrap();
            let out = Command::new(validate)
                .arg("--strict")
                .arg(&path)
                .output()
                .unwrap();
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{values}:\n{report}");
            let passed = report
                .lines()
                .filter(|l| l.contains(" passed for resource "))
                .count();
            assert_eq!(passed, core.len(), "{values}:\n{report}");
        }
    }

    // A mode that does not exist is refused at render, by name.
    let out = Command::new(&helm_bin)
        .args(["template", "sp", chart_arg, "--set", "mode=both"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mode must be embedded or cluster"));
}
