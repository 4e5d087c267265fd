//! The Kubernetes manifests of `deploy/kubernetes/` against the binary they run.
//!
//! Every YAML document of every manifest parses; every StreamPulse config in a ConfigMap passes
//! `streampulse check-config`; the config a container really runs with (its `--config`, through
//! its volume mounts, and through the init container that fills in the API tokens, which is run
//! here with `sh`) agrees with the container: ports, probes on the API port, the data volume at
//! the data directory, the Prometheus annotations, the Services and the disruption budget. With
//! `STREAMPULSE_TEST_KUBERNETES_VALIDATE` set to a `kubernetes-validate` executable (PyPI; `.ci/run`
//! installs it), every manifest is also checked against the Kubernetes API schemas in strict
//! mode; without it that test prints "skipped" and passes, unless `CI` is set: then it fails.

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

fn check_config(path: &Path) -> Output {
    streampulse()
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("STREAMPULSE_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
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

fn env_value<'a>(container: &'a Value, var: &str) -> Option<&'a str> {
    array(&container["env"])
        .iter()
        .find(|e| e["name"] == var)
        .and_then(|e| e["value"].as_str())
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

/// The tokens the init containers get from the Secret in these tests.
const TOKENS: [(&str, &str); 3] = [
    ("STREAMPULSE_READ_TOKENS", "read-token-0001,read-token-0002"),
    ("STREAMPULSE_WRITE_TOKENS", ""),
    ("STREAMPULSE_ADMIN_TOKENS", "admin/token+0001="),
];

/// The config file `container` of `pod` runs with (its `--config`, else STREAMPULSE_CONFIG):
/// from a ConfigMap, or rendered by an init container of the pod from one (run here with
/// `tokens`, and its `check-config` must pass). Returns the text and what the render printed.
fn container_config(
    all: &[Value],
    pod: &Value,
    container: &Value,
    dir: &Path,
    tokens: &[(&str, &str)],
) -> (String, Option<String>) {
    let path = arg_value(container, "--config")
        .or_else(|| env_value(container, "STREAMPULSE_CONFIG"))
        .unwrap_or_else(|| panic!("container {}: no --config", container["name"]));
    let (volume_name, key) = mount_of(container, path);
    let v = volume(pod, &volume_name);
    if v["configMap"].is_object() {
        let map = named(
            all,
            "ConfigMap",
            str_of(&v["configMap"]["name"], "configMap.name"),
        );
        let text = str_of(&map["data"][key], key).to_string();
        return (text, None);
    }
    assert!(
        v["emptyDir"].is_object(),
        "{path}: volume {volume_name} is neither a ConfigMap nor an emptyDir"
    );
    let init = array(&pod["initContainers"])
        .iter()
        .find(|c| env_value(c, "STREAMPULSE_CONFIG") == Some(path))
        .unwrap_or_else(|| panic!("{path}: no init container writes it"));
    assert_eq!(
        mount_of(init, path).0,
        volume_name,
        "the init container writes {path} to another volume"
    );
    let template_path = env_value(init, "STREAMPULSE_CONFIG_TEMPLATE").expect("a template");
    let (template_volume, template_key) = mount_of(init, template_path);
    let tv = volume(pod, &template_volume);
    let map = named(
        all,
        "ConfigMap",
        str_of(&tv["configMap"]["name"], "configMap.name"),
    );
    let template = str_of(&map["data"][template_key], template_key);
    let (rendered, stdout) = render(init, template, dir, tokens)
        .unwrap_or_else(|e| panic!("the init container of {path} failed: {e}"));
    (rendered, Some(stdout))
}

/// Runs `init`'s command and args (the config render) with `sh` on `template`, the binary on
/// PATH and `tokens` in the environment: the rendered config and stdout, or stderr.
fn render(
    init: &Value,
    template: &str,
    dir: &Path,
    tokens: &[(&str, &str)],
) -> Result<(String, String), String> {
    let command: Vec<&str> = array(&init["command"])
        .iter()
        .chain(array(&init["args"]))
        .map(|a| str_of(a, "command"))
        .collect();
    assert!(
        command.len() >= 2,
        "init container {}: no command",
        init["name"]
    );
    let template_path = dir.join("template.yaml");
    let output_path = dir.join("rendered.yaml");
    std::fs::write(&template_path, template).unwrap();
    let _ = std::fs::remove_file(&output_path);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_streampulse"))
        .parent()
        .unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut cmd = Command::new(command[0]);
    cmd.args(&command[1..])
        .env("PATH", path)
        .env("STREAMPULSE_CONFIG_TEMPLATE", &template_path)
        .env("STREAMPULSE_CONFIG", &output_path)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    for (var, _) in TOKENS {
        cmd.env_remove(var);
    }
    for (var, value) in tokens {
        cmd.env(var, value);
    }
    let out = cmd.output().expect("run the init container's command");
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    let rendered = std::fs::read_to_string(&output_path).map_err(|e| e.to_string())?;
    assert!(
        !dir.join("rendered.yaml.tmp").exists(),
        "the render left its temporary file"
    );
    Ok((rendered, text(&out.stdout)))
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
    for c in containers.iter().chain(array(&pod["initContainers"])) {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}: {}", c["name"]);
        assert_eq!(
            sc["allowPrivilegeEscalation"], false,
            "{what}: {}",
            c["name"]
        );
        assert_eq!(c["image"], container["image"], "{what}: one image");
        assert!(
            c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object(),
            "{what}: {} has no resource requests and limits",
            c["name"]
        );
    }

    let (config_text, rendered) = container_config(all, pod, container, dir, &TOKENS);
    let config: Value = serde_yaml_ng::from_str(&config_text).unwrap();
    let summary = match rendered {
        // The init container ran check-config on what it wrote, with the tokens filled in.
        Some(stdout) => {
            assert!(
                stdout.contains("auth on (2 read, 0 write, 1 admin tokens)"),
                "{what}: the init container did not fill in the tokens: {stdout}"
            );
            stdout
        }
        None => {
            let path = dir.join("config.yaml");
            std::fs::write(&path, &config_text).unwrap();
            let out = check_config(&path);
            assert!(out.status.success(), "{what}: {}", text(&out.stderr));
            text(&out.stdout)
        }
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
    for c in containers.iter().chain(array(&pod["initContainers"])) {
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
            let out = check_config(&path);
            assert!(
                out.status.success(),
                "{}: ConfigMap {}: {}",
                manifest.file,
                name(map),
                text(&out.stderr)
            );
            assert!(text(&out.stdout).starts_with("ok: "));
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

/// The embedded deployment's init container, to run its render with other tokens.
fn embedded_render(tokens: &[(&str, &str)]) -> Result<(String, String), String> {
    let docs = documents(&manifests_dir().join("embedded.yaml"));
    let set = named(&docs, "StatefulSet", "streampulse-embedded");
    let pod = &set["spec"]["template"]["spec"];
    let init = &array(&pod["initContainers"])[0];
    let map = named(&docs, "ConfigMap", "streampulse-embedded-config");
    let dir = tempfile::tempdir().unwrap();
    render(
        init,
        str_of(&map["data"]["streampulse.yaml"], "config"),
        dir.path(),
        tokens,
    )
}

#[test]
fn the_init_container_refuses_placeholder_and_malformed_tokens() {
    // No Secret (embedded.yaml's is optional): the config as it is, auth off.
    let (_, stdout) = embedded_render(&[]).unwrap();
    assert!(stdout.contains("auth off"), "{stdout}");

    // The example Secret as it ships: refused until its placeholders are replaced.
    let examples = documents(&manifests_dir().join("secrets.example.yaml"));
    let secret = named(&examples, "Secret", "streampulse-api-tokens");
    let data = &secret["stringData"];
    let placeholders = [
        (
            "STREAMPULSE_READ_TOKENS",
            str_of(&data["read_tokens"], "read"),
        ),
        (
            "STREAMPULSE_WRITE_TOKENS",
            str_of(&data["write_tokens"], "write"),
        ),
        (
            "STREAMPULSE_ADMIN_TOKENS",
            str_of(&data["admin_tokens"], "admin"),
        ),
    ];
    let err = embedded_render(&placeholders).unwrap_err();
    assert!(
        err.contains("server.auth.read_tokens: replace the placeholder"),
        "{err}"
    );

    let err =
        embedded_render(&[("STREAMPULSE_ADMIN_TOKENS", "good-token-1,bad token")]).unwrap_err();
    assert!(
        err.contains("server.auth.admin_tokens: a token holds only"),
        "{err}"
    );
    // A token the render lets through but check-config refuses (too short): named by the key.
    let err = embedded_render(&[("STREAMPULSE_WRITE_TOKENS", "short")]).unwrap_err();
    assert!(err.contains("server.auth.write_tokens"), "{err}");

    let err = embedded_render(&[("STREAMPULSE_WRITE_TOKENS", "write-token-1, ")]).unwrap_err();
    assert!(err.contains("no spaces"), "{err}");
    let (rendered, stdout) =
        embedded_render(&[("STREAMPULSE_WRITE_TOKENS", "write-token-1,")]).unwrap();
    assert!(
        stdout.contains("auth on (0 read, 1 write, 0 admin tokens)"),
        "{stdout}"
    );
    assert!(
        rendered.contains("write_tokens: ['write-token-1']"),
        "{rendered}"
    );
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
        let out = check_config(&path);
        assert!(!out.status.success(), "{config} passed");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(key), "{config}: {stderr}");
        assert!(out.stdout.is_empty(), "{config}: {}", text(&out.stdout));
    }
    let out = check_config(&dir.path().join("missing.yaml"));
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
    let out = check_config(&path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ok: ")
            && stdout.contains("job default")
            && stdout.contains(
                "kafka on (brokers 127.0.0.1:1, topic events, group streampulse-default)"
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
    match std::env::var_os(KUBERNETES_VALIDATE) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "{KUBERNETES_VALIDATE}={} is not a file",
                path.display()
            );
            Some(path)
        }
        _ if std::env::var_os("CI").is_some() => panic!(
            "{KUBERNETES_VALIDATE} is not set but CI is: this test needs the kubernetes-validate \
             executable (pip install kubernetes-validate==1.37.0; .ci/run installs it and sets it)"
        ),
        _ => {
            eprintln!(
                "skipped: set {KUBERNETES_VALIDATE} to a kubernetes-validate executable to check \
                 the manifests against the Kubernetes schemas"
            );
            None
        }
    }
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
