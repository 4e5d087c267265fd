//! The image the Compose files and the Helm chart run: the runtime stage of the repository's
//! `Dockerfile`, read from the file (no container engine runs here to build it), for the tests
//! that check those deployments against it (`deploy_compose.rs`, `deploy_helm.rs`).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

/// What the runtime stage declares.
pub struct Image {
    /// `USER`, as written (`uid:gid`).
    pub user: String,
    pub exposed: BTreeSet<u16>,
    pub volumes: Vec<String>,
    pub entrypoint: Vec<String>,
}

impl Image {
    /// The numeric user and group the image runs as.
    pub fn uid_gid(&self) -> (u64, u64) {
        let (u, g) = self.user.split_once(':').expect("USER uid:gid");
        (u.parse().unwrap(), g.parse().unwrap())
    }
}

/// The Dockerfile's last stage, its continuation lines joined.
pub fn runtime_stage() -> Image {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    let runtime = text.rsplit("\nFROM ").next().unwrap().replace("\\\n", " ");
    let mut image = Image {
        user: String::new(),
        exposed: BTreeSet::new(),
        volumes: Vec::new(),
        entrypoint: Vec::new(),
    };
    for line in runtime.lines() {
        if let Some(u) = line.strip_prefix("USER ") {
            image.user = u.trim().to_string();
        } else if let Some(p) = line.strip_prefix("EXPOSE ") {
            image
                .exposed
                .extend(p.split_whitespace().map(|p| p.parse::<u16>().unwrap()));
        } else if let Some(v) = line.strip_prefix("VOLUME ") {
            image.volumes = serde_json::from_str(v).unwrap();
        } else if let Some(e) = line.strip_prefix("ENTRYPOINT ") {
            image.entrypoint = serde_json::from_str(e).unwrap();
        }
    }
    image
}
