//! The Kubernetes manifests of `deploy/kubernetes/` against the binary they run.
//!
//! Every YAML document of every manifest parses; every StreamPulse config in a ConfigMap passes
//! `streampulse check-config`; the config a container really runs with (its `--config`, through
//! its volume mounts) passes it too with the API token variables the container takes from the
//! example Secret (refused while they hold its placeholders), and agrees with the container:
//! ports, probes on the API port, the data volume at the data directory, the Prometheus
//! annotations, the Services and the disruption budget. With
//! `STREAMPULSE_TEST_KUBERNETES_VALIDATE` set to a `kubernetes-validate` executable (PyPI; `.ci/run`
//! installs it), every manifest is also checked against the Kubernetes API schemas in strict
//! mode; without it that test prints "skipped" and passes, unless `CI` is set: then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

const KUBERNETES_VALIDATE: &str = "STREAMPULSE_TEST_KUBERNETES_VALIDATE";

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Every `*.yaml` of deploy/kubernetes, sorted.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .expect("deploy/kubernetes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
    for expected in ["cluster.yaml", "embedded.yaml"] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in {names:?}"
        );
    }
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The documents of a multi-document YAML file (empty ones skipped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: document {i}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

struct Manifest {
    file: String,
    docs: Vec<Value>,
}

fn manifests() -> Vec<Manifest> {
    manifest_files()
        .iter()
        .map(|path| {
            let docs = documents(path);
            let file = file_name(path);
            assert!(!docs.is_empty(), "{file}: no documents");
            for doc in &docs {
                for key in ["apiVersion", "kind"] {
                    assert!(doc[key].is_string(), "{file}: a document without {key}");
                }
                assert!(
                    doc["metadata"]["name"].is_string(),
                    "{file}: a {} without metadata.name",
                    doc["kind"]
                );
            }
            Manifest { file, docs }
        })
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap()
}

fn named<'a>(docs: &'a [Value], k: &str, n: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == k && name(d) == n)
        .unwrap_or_else(|| panic!("no {k} named {n}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels[k] == *v)
}

fn streampulse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_streampulse"))
}

/// `streampulse check-config --config path` with no token variables but those of `env`.
fn check_config(path: &Path, env: &[(&str, String)]) -> Output {
    let mut cmd = streampulse();
    cmd.args(["check-config", "--config"])
        .arg(path)
        .env_remove("STREAMPULSE_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    for (var, _) in TOKEN_KEYS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().cloned())
        .output()
        .expect("run streampulse check-config")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value after `flag` in a container's args.
fn arg_value<'a>(container: &'a Value, flag: &str) -> Option<&'a str> {
    let args = array(&container["args"]);
    args.iter()
        .position(|a| a == flag)
        .map(|i| str_of(&args[i + 1], flag))
}

/// The volume mounted at the directory holding `path` in `container`, and `path` inside it.
fn mount_of<'a>(container: &Value, path: &'a str) -> (String, &'a str) {
    for mount in array(&container["volumeMounts"]) {
        let dir = str_of(&mount["mountPath"], "mountPath").trim_end_matches('/');
        if let Some(rest) = path.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) {
            return (str_of(&mount["name"], "volumeMount name").to_string(), rest);
        }
    }
    panic!(
        "container {}: no volume mounted for {path}",
        container["name"]
    )
}

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    array(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// The API token variables of the binary (config.rs's `TOKEN_ENV`), each with the key of the
/// Secret `TOKEN_SECRET` (secrets.example.yaml) it comes from.
const TOKEN_KEYS: [(&str, &str); 3] = [
    ("STREAMPULSE_READ_TOKENS", "read_tokens"),
    ("STREAMPULSE_WRITE_TOKENS", "write_tokens"),
    ("STREAMPULSE_ADMIN_TOKENS", "admin_tokens"),
];
const TOKEN_SECRET: &str = "streampulse-api-tokens";

/// The config file `container` of `pod` runs with: its `--config`, from the ConfigMap mounted there.
fn container_config<'a>(all: &'a [Value], pod: &Value, container: &Value) -> &'a str {
    let path = arg_value(container, "--config")
        .unwrap_or_else(|| panic!("container {}: no --config", container["name"]));
    let (volume_name, key) = mount_of(container, path);
    let v = volume(pod, &volume_name);
    let name = v["configMap"]["name"].as_str();
    let map = named(
        all,
        "ConfigMap",
        name.unwrap_or_else(|| panic!("{path}: not a ConfigMap")),
    );
    str_of(&map["data"][key], key)
}

/// The token variables of `container`, each with the example Secret's value: each must come from
/// `TOKEN_SECRET`'s key for it, optionally (no Secret: auth off).
fn token_env(what: &str, all: &[Value], container: &Value) -> Vec<(&'static str, String)> {
    let secret = named(all, "Secret", TOKEN_SECRET);
    TOKEN_KEYS
        .iter()
        .map(|&(var, key)| {
            let env = array(&container["env"]).iter().find(|e| e["name"] == var);
            let reference =
                &env.unwrap_or_else(|| panic!("{what}: no {var}"))["valueFrom"]["secretKeyRef"];
            let expected = serde_json::json!({"name": TOKEN_SECRET, "key": key, "optional": true});
            assert_eq!(reference, &expected, "{what}: {var}");
            (var, str_of(&secret["stringData"][key], key).to_string())
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr}"))
}

/// The ports a config listens on: (API, metrics if enabled).
fn config_ports(config: &Value) -> (u16, Option<u16>) {
    let api = config["server"]["listen"]
        .as_str()
        .unwrap_or("0.0.0.0:8080");
    let metrics_on = config["metrics"]["enabled"].as_bool().unwrap_or(true);
    let metrics = config["metrics"]["listen"]
        .as_str()
        .unwrap_or("0.0.0.0:9249");
    (port_of(api), metrics_on.then(|| port_of(metrics)))
}

/// A probe's or Service's port (a number, or the name of a container port) as a number.
fn resolve_port(ports: &BTreeMap<String, u16>, port: &Value) -> u16 {
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => *ports
            .get(name)
            .unwrap_or_else(|| panic!("no container port named {name}")),
        other => panic!("not a port: {other}"),
    }
}

/// Checks one workload (StatefulSet or Job) running the image against its config and the other
/// documents of its file. Returns the `check-config` line of the config it runs with.
fn check_workload(all: &[Value], manifest: &Manifest, workload: &Value, dir: &Path) -> String {
    let what = format!("{}: {} {}", manifest.file, workload["kind"], name(workload));
    let pod = &workload["spec"]["template"]["spec"];
    let labels = &workload["spec"]["template"]["metadata"]["labels"];
    let containers = array(&pod["containers"]);
    assert_eq!(containers.len(), 1, "{what}: one container");
    let container = &containers[0];

    // Security: non-root, nothing written outside the volumes.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
    assert!(
        container["resources"]["requests"].is_object()
            && container["resources"]["limits"].is_object(),
        "{what}: no resource requests and limits"
    );

    let config_text = container_config(all, pod, container);
    let config: Value = serde_yaml_ng::from_str(config_text).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, config_text).unwrap();
    let summary = if workload["kind"] == "StatefulSet" {
        // The example Secret as it ships: refused, naming the variable.
        let secret = token_env(&what, all, container);
        let out = check_config(&path, &secret);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("replace the placeholder")
                && stderr.contains("(or STREAMPULSE_"),
            "{what}: the example Secret's placeholders passed: {stderr}"
        );
        // Its placeholders replaced: auth on, with the Secret's tokens.
        let tokens: Vec<(&str, String)> = (secret.iter())
            .map(|(var, value)| (*var, value.replace("CHANGE_ME", "test")))
            .collect();
        let out = check_config(&path, &tokens);
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        let count = |i: usize| tokens[i].1.split(',').filter(|t| !t.is_empty()).count();
        let auth = format!(
            "auth on ({} read, {} write, {} admin tokens)",
            count(0),
            count(1),
            count(2)
        );
        let stdout = text(&out.stdout);
        assert!(stdout.contains(&auth), "{what}: {stdout}");
        stdout
    } else {
        let out = check_config(&path, &[]);
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(summary.starts_with("ok: "), "{what}: {summary}");

    if workload["kind"] == "Job" {
        return summary;
    }
    assert_eq!(workload["kind"], "StatefulSet");
    let spec = &workload["spec"];
    assert_eq!(
        array(&container["args"]).first().and_then(Value::as_str),
        Some("run"),
        "{what}: the container runs `streampulse run`"
    );
    assert!(
        selects(&spec["selector"]["matchLabels"], labels),
        "{what}: the selector does not select the pod template"
    );
    let replicas = spec["replicas"].as_u64().unwrap_or(1);
    if replicas > 1 {
        // Several processes share a job only as workers of one consumer group.
        assert!(
            summary.contains("kafka on"),
            "{what}: {replicas} replicas without Kafka: {summary}"
        );
    }

    // Ports: exactly the config's listeners, named.
    let (api, metrics) = config_ports(&config);
    let ports: BTreeMap<String, u16> = array(&container["ports"])
        .iter()
        .map(|p| {
            (
                str_of(&p["name"], "port name").to_string(),
                p["containerPort"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    let numbers: BTreeSet<u16> = ports.values().copied().collect();
    let expected: BTreeSet<u16> = std::iter::once(api).chain(metrics).collect();
    assert_eq!(
        numbers, expected,
        "{what}: container ports vs server.listen/metrics.listen"
    );

    // Probes: readiness on /readyz, liveness (and startup) on /healthz, all on the API port.
    for (probe, path, required) in [
        ("readinessProbe", "/readyz", true),
        ("livenessProbe", "/healthz", true),
        ("startupProbe", "/healthz", false),
    ] {
        let get = &container[probe]["httpGet"];
        if !required && container[probe].is_null() {
            continue;
        }
        assert_eq!(get["path"], path, "{what}: {probe}");
        assert_eq!(
            resolve_port(&ports, &get["port"]),
            api,
            "{what}: {probe} port"
        );
    }
    assert!(
        spec["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .is_some_and(|s| s >= 60),
        "{what}: terminationGracePeriodSeconds must leave time for the final checkpoint"
    );

    // The data directory is the claim of each pod.
    let data_dir = arg_value(container, "--data-dir")
        .or_else(|| config["data_dir"].as_str())
        .unwrap_or_else(|| panic!("{what}: no data directory"));
    if let Some(configured) = config["data_dir"].as_str() {
        assert_eq!(configured, data_dir, "{what}: data_dir vs --data-dir");
    }
    let data_mount = array(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(data_dir))
        .unwrap_or_else(|| panic!("{what}: nothing mounted at the data directory {data_dir}"));
    assert_ne!(
        data_mount["readOnly"], true,
        "{what}: the data volume is read-only"
    );
    let claims: Vec<&str> = array(&spec["volumeClaimTemplates"])
        .iter()
        .map(name)
        .collect();
    assert!(
        claims.contains(&str_of(&data_mount["name"], "volumeMount name")),
        "{what}: {data_dir} is not a volumeClaimTemplate ({claims:?})"
    );

    // Prometheus: the annotations name the metrics port.
    let annotations = &spec["template"]["metadata"]["annotations"];
    match metrics {
        Some(port) => {
            assert_eq!(annotations["prometheus.io/scrape"], "true", "{what}");
            assert_eq!(
                annotations["prometheus.io/port"],
                port.to_string(),
                "{what}"
            );
            assert_eq!(annotations["prometheus.io/path"], "/metrics", "{what}");
            assert_eq!(ports.get("metrics"), Some(&port), "{what}: port `metrics`");
        }
        None => assert_ne!(annotations["prometheus.io/scrape"], "true", "{what}"),
    }

    // Services: serviceName names one of the file's, headless when there are several pods; every
    // Service selecting the pods targets a container port.
    let governing = named(
        &manifest.docs,
        "Service",
        str_of(&spec["serviceName"], "serviceName"),
    );
    if replicas > 1 {
        assert_eq!(
            governing["spec"]["clusterIP"], "None",
            "{what}: serviceName must be a headless Service"
        );
    }
    let services: Vec<&Value> = kind(&manifest.docs, "Service")
        .into_iter()
        .filter(|s| selects(&s["spec"]["selector"], labels))
        .collect();
    assert!(
        services.iter().any(|s| name(s) == name(governing)),
        "{what}: the serviceName Service does not select the pods"
    );
    for service in &services {
        for port in array(&service["spec"]["ports"]) {
            let target = if port["targetPort"].is_null() {
                &port["port"]
            } else {
                &port["targetPort"]
            };
            let n = resolve_port(&ports, target);
            assert!(
                numbers.contains(&n),
                "{what}: Service {} port {n}",
                name(service)
            );
        }
    }
    let budgets: Vec<&Value> = kind(&manifest.docs, "PodDisruptionBudget")
        .into_iter()
        .filter(|b| selects(&b["spec"]["selector"]["matchLabels"], labels))
        .collect();
    if replicas > 1 {
        assert_eq!(budgets.len(), 1, "{what}: one PodDisruptionBudget");
        assert_eq!(budgets[0]["spec"]["maxUnavailable"], 1, "{what}");
    }

    // Secrets referenced exist in the example, with the keys asked for.
    let secrets: Vec<&Value> = kind(all, "Secret");
    for c in containers {
        for env in array(&c["env"]) {
            let r = &env["valueFrom"]["secretKeyRef"];
            if r.is_object() {
                let secret = named(all, "Secret", str_of(&r["name"], "secret name"));
                let key = str_of(&r["key"], "secret key");
                assert!(
                    secret["stringData"][key].is_string(),
                    "{what}: Secret {} has no key {key}",
                    name(secret)
                );
            }
        }
        for from in array(&c["envFrom"]) {
            if let Some(n) = from["secretRef"]["name"].as_str() {
                assert!(
                    secrets.iter().any(|s| name(s) == n),
                    "{what}: no example of Secret {n}"
                );
            }
        }
    }
    summary
}

#[test]
fn manifests_agree_with_the_configs_they_run() {
    let manifests = manifests();
    let all: Vec<Value> = manifests.iter().flat_map(|m| m.docs.clone()).collect();
    let dir = tempfile::tempdir().unwrap();

    // Every StreamPulse config of a ConfigMap passes check-config as it stands.
    let mut configs = 0;
    for manifest in &manifests {
        for map in kind(&manifest.docs, "ConfigMap") {
            let Some(config) = map["data"]["streampulse.yaml"].as_str() else {
                continue;
            };
            configs += 1;
            let path = dir.path().join(format!("{}.yaml", name(map)));
            std::fs::write(&path, config).unwrap();
            // Without the token variables (no Secret): auth off.
            let out = check_config(&path, &[]);
            assert!(
                out.status.success(),
                "{}: ConfigMap {}: {}",
                manifest.file,
                name(map),
                text(&out.stderr)
            );
            let stdout = text(&out.stdout);
            assert!(
                stdout.starts_with("ok: ") && stdout.contains("auth off"),
                "{stdout}"
            );
        }
    }
    assert!(configs >= 2, "expected the cluster and embedded configs");

    let mut summaries = BTreeMap::new();
    for manifest in &manifests {
        for workload in kind(&manifest.docs, "StatefulSet")
            .into_iter()
            .chain(kind(&manifest.docs, "Job"))
        {
            let summary = check_workload(&all, manifest, workload, dir.path());
            summaries.insert(manifest.file.clone(), summary);
        }
    }
    let cluster = &summaries["cluster.yaml"];
    assert!(
        cluster.contains("kafka on") && cluster.contains("checkpoints s3://"),
        "{cluster}"
    );
    let embedded = &summaries["embedded.yaml"];
    assert!(embedded.contains("kafka off"), "{embedded}");
}

#[test]
fn check_config_names_the_bad_key_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    for (config, key) in [
        ("log:\n  partitons: 2\n", "log.partitons"),
        ("server:\n  listen: eighty\n", "server.listen"),
        (
            "kafka:\n  brokers: kafka:9092\n  properties:\n    sesion.timeout.ms: \"10000\"\n",
            "kafka.properties.sesion.timeout.ms",
        ),
        (
            "checkpoint:\n  storage: s3://bucket/prefix\n  storage_options: {aws_endpont: http://m}\n",
            "checkpoint.storage_options.aws_endpont",
        ),
    ] {
        std::fs::write(&path, config).unwrap();
        let out = check_config(&path, &[]);
        assert!(!out.status.success(), "{config} passed");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(key), "{config}: {stderr}");
        assert!(out.stdout.is_empty(), "{config}: {}", text(&out.stdout));
    }
    let out = check_config(&dir.path().join("missing.yaml"), &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read config file"));

    // A valid config: nothing created under data_dir, no port bound (this one is taken).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data_dir = dir.path().join("never-created");
    std::fs::write(
        &path,
        format!(
            "data_dir: {}\nserver:\n  listen: 127.0.0.1:{port}\nkafka:\n  brokers: 127.0.0.1:1\n  properties:\n    session.timeout.ms: \"10000\"\n",
            data_dir.display()
        ),
    )
    .unwrap();
    let out = check_config(&path, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ok: ")
            && stdout.contains("job default")
            && stdout.contains(
                "kafka on (brokers 127.0.0.1:1, topic events, group streampulse-default, outputs at least once)"
            )
            && stdout.contains(&format!(
                "checkpoints {}",
                data_dir.join("checkpoints").display()
            )),
        "{stdout}"
    );
    assert!(
        !data_dir.exists(),
        "check-config created the data directory"
    );
    // The summary says which output guarantee the job runs with.
    std::fs::write(
        &path,
        "kafka:\n  brokers: 127.0.0.1:1\n  results_topic: results\n  exactly_once: true\n",
    )
    .unwrap();
    let out = check_config(&path, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("outputs exactly once, in transactions"),
        "{}",
        text(&out.stdout)
    );
    // The transactional id from the environment is held to the config key's rule.
    let env = [(
        "STREAMPULSE_KAFKA_TRANSACTIONAL_ID",
        "pod 0/with spaces".to_string(),
    )];
    let out = check_config(&path, &env);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("kafka.transactional_id"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_readme_scrape_config_finds_the_metrics_port() {
    let readme = std::fs::read_to_string(manifests_dir().join("README.md")).unwrap();
    let block = readme
        .split("```yaml")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("kubernetes_sd_configs"))
        .expect("a scrape config in deploy/kubernetes/README.md");
    let indent = block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap();
    let yaml: String = block
        .lines()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let config: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let job = &config["scrape_configs"][0];
    assert_eq!(job["job_name"], "streampulse");
    let keep = |label: &str| -> String {
        let rule = array(&job["relabel_configs"])
            .iter()
            .find(|r| r["action"] == "keep" && array(&r["source_labels"]) == [label])
            .unwrap_or_else(|| panic!("no keep rule on {label}"));
        str_of(&rule["regex"], "regex").to_string()
    };
    let scrape = keep("__meta_kubernetes_pod_annotation_prometheus_io_scrape");
    let port_name = keep("__meta_kubernetes_pod_container_port_name");
    assert!(array(&job["relabel_configs"])
        .iter()
        .any(|r| r["source_labels"]
            == serde_json::json!(["__meta_kubernetes_pod_annotation_prometheus_io_path"])
            && r["target_label"] == "__metrics_path__"));
    for file in ["cluster.yaml", "embedded.yaml"] {
        let docs = documents(&manifests_dir().join(file));
        for set in kind(&docs, "StatefulSet") {
            let template = &set["spec"]["template"];
            assert_eq!(
                template["metadata"]["annotations"]["prometheus.io/scrape"],
                scrape
            );
            let container = &template["spec"]["containers"][0];
            let port = array(&container["ports"])
                .iter()
                .find(|p| p["name"] == port_name.as_str())
                .unwrap_or_else(|| panic!("{file}: no container port named {port_name}"));
            assert_eq!(
                template["metadata"]["annotations"]["prometheus.io/port"],
                port["containerPort"].to_string(),
                "{file}"
            );
        }
    }
}

/// The `kubernetes-validate` executable, or `None` (after saying so) when the test must be skipped.
fn kubernetes_validate() -> Option<PathBuf> {
    streampulse_testkit::env::required_file(
        KUBERNETES_VALIDATE,
        "a kubernetes-validate executable (pip install kubernetes-validate==1.37.0), to check the \
         manifests against the Kubernetes schemas",
    )
}

#[test]
fn manifests_match_the_kubernetes_schemas() {
    let Some(validate) = kubernetes_validate() else {
        return;
    };
    for path in manifest_files() {
        let out = Command::new(&validate)
            .arg("--strict")
            .arg(&path)
            .output()
            .expect("run kubernetes-validate");
        let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{}:\n{report}", path.display());
        // Every document checked against a schema: none unknown (a WARN), none failed.
        let passed = report
            .lines()
            .filter(|l| l.contains(" passed for resource "))
            .count();
        assert_eq!(
            passed,
            documents(&path).len(),
            "{}:\n{report}",
            path.display()
        );
        assert!(
            !report
                .lines()
                .any(|l| l.starts_with("WARN") || l.starts_with("ERROR")),
            "{}:\n{report}",
            path.display()
        );
    }
}
