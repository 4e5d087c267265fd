//! Checkpoint storage in an object store (S3 and S3-compatible servers, Google Cloud Storage,
//! Azure Blob Storage), through the `object_store` crate.
//!
//! This is what lets a checkpoint outlive the machine that wrote it: any worker that can reach
//! the bucket can restore it. A PUT in these stores is atomic (a reader sees the old object or the
//! new one, never a part), which is the one guarantee [`CheckpointStorage::put`] asks for, so no
//! temporary name or rename is needed.
//!
//! [`CheckpointStorage`] is synchronous and called from the engine's plain threads, while
//! `object_store` is async; each storage owns a small current-thread tokio runtime and blocks on
//! it. It must never be called from async code: it would block that executor's thread for a whole
//! HTTP round trip (with retries). If it is called from inside a runtime anyway, the call is run on
//! a short-lived helper thread instead of panicking, so a misuse is slow but not fatal.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use object_store::path::Path;
use object_store::signer::Url;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload};

use super::{CheckpointError, CheckpointStorage};

/// Environment variable prefixes read for each store, as the `object_store` builders' own
/// `from_env` do (`parse_url_opts` alone reads none).
const ENV_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

pub struct ObjectStoreCheckpointStorage {
    store: Arc<dyn ObjectStore>,
    /// Where the blobs live inside the store (the URL's path); names are relative to it.
    root: Path,
    /// The URL without query or credentials, for messages.
    url: String,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

/// Whether `url` names an object store this storage serves (rather than a file or a path).
pub(super) fn is_object_store_url(url: &str) -> bool {
    matches!(
        Url::parse(url)
            .ok()
            .and_then(|u| ObjectStoreScheme::parse(&u).ok())
            .map(|(scheme, _)| scheme),
        Some(
            ObjectStoreScheme::AmazonS3
                | ObjectStoreScheme::GoogleCloudStorage
                | ObjectStoreScheme::MicrosoftAzure
        )
    )
}

/// Checks that every key of `options` means something to the store `url` names: the builders
/// behind `parse_url_opts` ignore unknown keys, and a misspelt `aws_endpoint` must not silently
/// send checkpoints to AWS instead of the intended server.
pub(super) fn check_options(
    url: &str,
    options: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let unsupported = || CheckpointError::UnsupportedUrl(url.to_string());
    let parsed = Url::parse(url).map_err(|_| unsupported())?;
    let (scheme, _) = ObjectStoreScheme::parse(&parsed).map_err(|_| unsupported())?;
    for key in options.keys() {
        let k = key.to_ascii_lowercase();
        let known = match scheme {
            ObjectStoreScheme::AmazonS3 => {
                k.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok()
            }
            ObjectStoreScheme::GoogleCloudStorage => {
                k.parse::<object_store::gcp::GoogleConfigKey>().is_ok()
            }
            ObjectStoreScheme::MicrosoftAzure => {
                k.parse::<object_store::azure::AzureConfigKey>().is_ok()
            }
            _ => return Err(unsupported()),
        };
        if !known {
            return Err(CheckpointError::InvalidOption {
                url: redact(&parsed),
                key: key.clone(),
                reason: "not an option of this object store".into(),
            });
        }
    }
    Ok(())
}

/// `scheme://host/path` of `url`: no user, password or query string, which may hold secrets.
fn redact(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.path().trim_end_matches('/')
    )
}

impl ObjectStoreCheckpointStorage {
    /// Opens the store `url` names (`s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix`, ...). Settings come from the standard environment variables
    /// (`AWS_*`, `GOOGLE_*`, `AZURE_*`), then from `options` (keys as `object_store` names them,
    /// e.g. `aws_endpoint`, `aws_region`, `aws_allow_http`), which win. Nothing is contacted
    /// yet: a wrong endpoint or credential shows at the first read or write.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self, CheckpointError> {
        check_options(url, options)?;
        let parsed =
            Url::parse(url).map_err(|_| CheckpointError::UnsupportedUrl(url.to_string()))?;
        let shown = redact(&parsed);
        let from_env = std::env::vars().filter_map(|(key, value)| {
            ENV_PREFIXES
                .iter()
                .any(|p| key.starts_with(p))
                .then(|| (key.to_ascii_lowercase(), value))
        });
        // Later pairs override earlier ones in the builders, so the config file wins.
        let pairs: Vec<(String, String)> = from_env
            .chain(
                options
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
            )
            .collect();
        let (store, root) = object_store::parse_url_opts(&parsed, pairs).map_err(|source| {
            CheckpointError::ObjectStore {
                url: shown.clone(),
                op: "open",
                source,
            }
        })?;
        Self::new(Arc::from(store), root, shown)
    }

    /// A storage over an existing store, rooted at `root`; `url` is only shown in messages.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        root: Path,
        url: String,
    ) -> Result<Self, CheckpointError> {
        // Current-thread: one storage needs no parallelism, and no extra threads sit idle
        // between checkpoints. I/O and timers: the HTTP client needs both.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| CheckpointError::Io {
                path: url.clone(),
                source,
            })?;
        Ok(Self {
            store,
            root,
            url,
            runtime: Some(runtime),
        })
    }

    fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let Some(runtime) = self.runtime.as_ref() else {
            unreachable!("the runtime is taken only by drop");
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future);
        }
        // Called from async code, where block_on would panic: see the module docs.
        std::thread::scope(
            |scope| match scope.spawn(|| runtime.block_on(future)).join() {
                Ok(output) => output,
                Err(panic) => std::panic::resume_unwind(panic),
            },
        )
    }

    fn location(&self, name: &str) -> Result<Path, CheckpointError> {
        let full = if self.root.as_ref().is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.root)
        };
        Path::parse(&full).map_err(|e| CheckpointError::InvalidOption {
            url: self.url.clone(),
            key: name.to_string(),
            reason: format!("not a valid object name: {e}"),
        })
    }

    fn error(&self, op: &'static str, source: object_store::Error) -> CheckpointError {
        CheckpointError::ObjectStore {
            url: self.url.clone(),
            op,
            source,
        }
    }
}

impl Drop for ObjectStoreCheckpointStorage {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, and panics inside async code; the
        // storage may be dropped there (with the API's state), and holds no task worth waiting for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl CheckpointStorage for ObjectStoreCheckpointStorage {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        let location = self.location(name)?;
        let payload = PutPayload::from(bytes.to_vec());
        self.block_on(self.store.put(&location, payload))
            .map(|_| ())
            .map_err(|e| self.error("put", e))
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, CheckpointError> {
        let location = self.location(name)?;
        let result = self.block_on(async {
            match self.store.get(&location).await {
                Ok(found) => found.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        result
            .map(|bytes| bytes.map(|b| b.to_vec()))
            .map_err(|e| self.error("get", e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, CheckpointError> {
        // As the file storage: names directly in the prefix's folder that start with the rest
        // (`job/chk-` lists `job/chk-1`, not `job/savepoints/x`). Object stores list by whole
        // path segments, so the folder is listed and its names filtered here.
        let (folder, file_prefix) = match prefix.rsplit_once('/') {
            Some((folder, rest)) => (Some(folder), rest),
            None => (None, prefix),
        };
        let dir = match folder {
            Some(folder) => self.location(folder)?,
            None => self.root.clone(),
        };
        let listed = self
            .block_on(self.store.list_with_delimiter(Some(&dir)))
            .map_err(|e| self.error("list", e))?;
        let mut names: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|meta| meta.location.filename())
            .filter(|file| file.starts_with(file_prefix))
            .map(|file| match folder {
                Some(folder) => format!("{folder}/{file}"),
                None => file.to_string(),
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete(&self, name: &str) -> Result<(), CheckpointError> {
        let location = self.location(name)?;
        match self.block_on(self.store.delete(&location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", e)),
        }
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, CheckpointStore, PartitionCheckpoint};
    use object_store::memory::InMemory;

    fn in_memory(root: &str) -> (Arc<InMemory>, ObjectStoreCheckpointStorage) {
        let memory = Arc::new(InMemory::new());
        let storage = ObjectStoreCheckpointStorage::new(
            memory.clone(),
            Path::parse(root).unwrap(),
            // As `describe` shows a URL: no trailing '/'.
            match root {
                "" => "memory://".to_string(),
                _ => format!("memory:///{root}"),
            },
        )
        .unwrap();
        (memory, storage)
    }

    #[test]
    fn put_get_list_delete() {
        let (memory, s) = in_memory("ckpt");
        s.put("job/chk-2", b"two").unwrap();
        s.put("job/chk-1", b"one").unwrap();
        s.put("job/savepoints/x", b"sp").unwrap();
        s.put("jobber/chk-9", b"other job").unwrap();
        assert_eq!(s.get("job/chk-1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(s.list("job/chk-").unwrap(), vec!["job/chk-1", "job/chk-2"]);
        assert_eq!(s.list("job/savepoints/").unwrap(), vec!["job/savepoints/x"]);
        s.delete("job/chk-1").unwrap();
        s.delete("job/chk-1").unwrap();
        assert_eq!(s.list("job/chk-").unwrap(), vec!["job/chk-2"]);
        assert_eq!(s.get("job/nothing").unwrap(), None);
        assert!(s.list("other/").unwrap().is_empty());
        // Everything is under the URL's path.
        let raw = s
            .block_on(memory.get(&Path::parse("ckpt/job/chk-2").unwrap()))
            .unwrap();
        assert_eq!(&s.block_on(raw.bytes()).unwrap()[..], b"two");
        assert!(matches!(
            s.put("job/../escape", b"x"),
            Err(CheckpointError::InvalidOption { .. })
        ));
    }

    #[test]
    fn a_checkpoint_store_keeps_and_restores_checkpoints() {
        let (_, s) = in_memory("");
        let store = CheckpointStore::new(Box::new(s), "job", 2);
        for id in 1..=5 {
            let partition = PartitionCheckpoint {
                partition: 0,
                next_offset: id * 10,
                watermark: 5,
                state: vec![1, 2],
            };
            store
                .write(&Checkpoint::new(id, "job", 0, vec![partition]))
                .unwrap();
        }
        let latest = store.latest().unwrap().unwrap();
        assert_eq!((latest.id, latest.partitions[0].next_offset), (5, 50));
        assert_eq!(store.max_id().unwrap(), 5);
        let location = store
            .write_savepoint("keep", &Checkpoint::new(9, "job", 0, Vec::new()))
            .unwrap();
        assert_eq!(location, "memory:///job/savepoints/keep.ckpt");
        assert_eq!(store.savepoints().unwrap(), vec!["keep"]);
    }

    #[test]
    fn callable_from_inside_a_runtime_without_panicking() {
        let (_, s) = in_memory("r");
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        outer.block_on(async {
            s.put("a", b"1").unwrap();
            assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        });
        // And dropped there too.
        outer.block_on(async move { drop(s) });
    }

    #[test]
    fn options_are_checked_against_the_store() {
        let ok: BTreeMap<String, String> = [
            ("aws_endpoint", "http://127.0.0.1:9000"),
            ("aws_allow_http", "true"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        check_options("s3://bucket/ckpt", &ok).unwrap();
        let typo: BTreeMap<String, String> =
            [("aws_endpoit".to_string(), "http://x".to_string())].into();
        let e = check_options("s3://bucket/ckpt", &typo).unwrap_err();
        assert!(
            e.to_string().contains("aws_endpoit") && e.to_string().contains("s3://bucket/ckpt"),
            "{e}"
        );
        // An S3 option means nothing to Google Cloud Storage.
        assert!(check_options("gs://bucket/ckpt", &typo).is_err());
        assert!(is_object_store_url("s3://bucket/ckpt"));
        assert!(is_object_store_url("gs://bucket"));
        assert!(is_object_store_url("az://container/x"));
        assert!(!is_object_store_url("file:///tmp/x"));
        assert!(!is_object_store_url("http://example.com/x"));
        assert!(!is_object_store_url("/tmp/x"));
    }

    #[test]
    fn opening_contacts_nothing_and_the_url_is_shown_without_secrets() {
        let options: BTreeMap<String, String> = [
            ("aws_endpoint", "http://127.0.0.1:1"),
            ("aws_region", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = ObjectStoreCheckpointStorage::open("s3://bucket/ckpt/", &options).unwrap();
        assert_eq!(s.describe(), "s3://bucket/ckpt");
    }
}
