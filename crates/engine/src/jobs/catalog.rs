//! The durable list of jobs submitted over the API, so that a restarted process runs them again.
//!
//! One JSON blob per job, `jobs.catalog/<name>.json` in the checkpoint storage (next to the jobs'
//! checkpoints, so a job and its catalog entry live and move together). A blob holds the job's
//! definition exactly as submitted, where it started reading, and whether it should run: a job
//! stopped with `DELETE /jobs/{id}` stays listed (its results stay queryable) but is not
//! restarted.
//!
//! The catalog never decides anything about a job's state: restoring is the runtime's business.

use serde::{Deserialize, Serialize};
use streampulse_core::job::JobSpec;

use crate::checkpoint::{CheckpointError, CheckpointStorage};
use crate::runtime::InitialPosition;

/// A folder name no job can have ('.' is not allowed in job names).
const FOLDER: &str = "jobs.catalog/";

/// What the catalog keeps of one submitted job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub spec: JobSpec,
    /// Where the job started reading when it had no checkpoint (used again if it is restarted
    /// before its first checkpoint).
    pub start: InitialPosition,
    /// False once stopped: listed, queryable, not restarted.
    pub running: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("job catalog: {0}")]
    Storage(#[from] CheckpointError),
    #[error("job catalog entry {name} is unreadable: {reason}")]
    Unreadable { name: String, reason: String },
}

pub struct JobCatalog {
    storage: Box<dyn CheckpointStorage>,
}

impl JobCatalog {
    pub fn new(storage: Box<dyn CheckpointStorage>) -> Self {
        Self { storage }
    }

    /// Writes (or replaces) `entry`, atomically.
    pub fn save(&self, entry: &CatalogEntry) -> Result<(), CatalogError> {
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| CatalogError::Unreadable {
            name: entry.spec.name.clone(),
            reason: e.to_string(),
        })?;
        Ok(self
            .storage
            .put(&format!("{FOLDER}{}.json", entry.spec.name), &bytes)?)
    }

    /// The entry of job `name`, if there is one.
    pub fn entry(&self, name: &str) -> Result<Option<CatalogEntry>, CatalogError> {
        Ok(self.entries()?.into_iter().find(|e| e.spec.name == name))
    }

    /// Forgets job `name`.
    pub fn delete(&self, name: &str) -> Result<(), CatalogError> {
        Ok(self.storage.delete(&format!("{FOLDER}{name}.json"))?)
    }

    /// Every entry, by name.
    pub fn entries(&self) -> Result<Vec<CatalogEntry>, CatalogError> {
        let mut entries = Vec::new();
        for name in self.storage.list(FOLDER)? {
            if !name.ends_with(".json") {
                continue;
            }
            let Some(bytes) = self.storage.get(&name)? else {
                continue;
            };
            let entry: CatalogEntry =
                serde_json::from_slice(&bytes).map_err(|e| CatalogError::Unreadable {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::open_storage;

    #[test]
    fn entries_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().display().to_string();
        let catalog = JobCatalog::new(open_storage(&url).unwrap());
        assert!(catalog.entries().unwrap().is_empty());
        let mut entry = CatalogEntry {
            spec: JobSpec {
                name: "hourly".into(),
                ..JobSpec::default()
            },
            start: InitialPosition::Offsets(vec![3, 0, 7, 1]),
            running: true,
        };
        catalog.save(&entry).unwrap();
        let other = CatalogEntry {
            spec: JobSpec {
                name: "alpha".into(),
                ..JobSpec::default()
            },
            start: InitialPosition::Earliest,
            running: true,
        };
        catalog.save(&other).unwrap();
        entry.running = false;
        catalog.save(&entry).unwrap();
        // A fresh handle reads what was written: the catalog is on disk, not in memory.
        let reopened = JobCatalog::new(open_storage(&url).unwrap());
        assert_eq!(reopened.entries().unwrap(), vec![other, entry]);
    }

    #[test]
    fn an_unreadable_entry_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = open_storage(&dir.path().display().to_string()).unwrap();
        storage
            .put("jobs.catalog/broken.json", b"{not json")
            .unwrap();
        let err = JobCatalog::new(storage).entries().unwrap_err().to_string();
        assert!(err.contains("jobs.catalog/broken.json"), "{err}");
    }
}
