//! The jobs of one process: the job its config file defines, and jobs submitted over the API.
//!
//! Every job reads the same input (the embedded log that HTTP ingest appends to), each at its
//! own offsets, with its own windows, detectors, checkpoints and results (the store's keys and
//! the checkpoint names start with the job name). So a second view of the same events — another
//! window size, other detectors — is one `POST /jobs` away, and it can start from the oldest
//! retained event or from now.
//!
//! - The **configured job** is owned by the config file: it cannot be submitted or replaced
//!   over the API, only stopped (until the process restarts).
//! - A **submitted job** is written to the [`JobCatalog`] once it has started, and a restarted
//!   process starts it again from its latest checkpoint. Stopping it (with an optional savepoint)
//!   marks it stopped in the catalog: its results stay queryable, and submitting the same name
//!   again resumes it from its final checkpoint (or from a savepoint), possibly with a changed
//!   definition, which the restore accepts or refuses like a restart would.
//!
//! Starting runtimes is the [`JobLauncher`]'s business (it knows the log, the store and the
//! checkpoint storage); this module only keeps the list and the rules. It never touches a job's
//! state itself.

mod catalog;
mod launcher;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use streampulse_core::config::ConfigError;
use streampulse_core::job::{Job, JobSpec};

pub use catalog::{CatalogEntry, CatalogError, JobCatalog};
pub use launcher::EmbeddedLauncher;

use crate::runtime::{EngineError, InitialPosition, Runtime, StartFrom};
use crate::status::{JobCounters, JobStatus};

/// Most submitted jobs running at once: each runs a thread per log partition and holds its
/// windows in memory, so an unbounded number would let callers exhaust the process.
pub const MAX_RUNNING_SUBMITTED: usize = 32;

/// Starts runtimes for submitted jobs over the process's shared input.
pub trait JobLauncher: Send + Sync {
    /// Starts `job`, restoring `from`; with no checkpoint, it reads from `position`.
    fn launch(
        &self,
        job: Job,
        from: StartFrom,
        position: InitialPosition,
    ) -> Result<Runtime, EngineError>;
    /// The input's end offsets now, one per partition (what `latest` means).
    fn end_offsets(&self) -> Vec<u64>;
    /// Job `job` stopped for good (until submitted again): its unread input need no longer be
    /// kept for it.
    fn detach(&self, job: &str);
    /// Job `job` could not start again, though it ran before: keep all of its unread input
    /// until it is stopped (`detach`) or runs again.
    fn keep(&self, job: &str);
}

/// A request to run a job.
#[derive(Debug, Clone)]
pub struct Submission {
    pub spec: JobSpec,
    /// Where to start when the job has no checkpoint: `Earliest` or `Latest`.
    pub position: InitialPosition,
    /// Restore this savepoint of the job instead of its latest checkpoint.
    pub from_savepoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("job.{0}")]
    Invalid(ConfigError),
    #[error("no job '{0}'")]
    NotFound(String),
    #[error("job '{0}' is defined by the config file: change the file and restart the process to change it")]
    Configured(String),
    #[error("job '{0}' is running: stop it first (DELETE /jobs/{0}?savepoint=NAME keeps its state) to submit a new definition")]
    Running(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("job '{job}': {source}")]
    Engine {
        job: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl JobsError {
    pub fn engine(job: &str, source: EngineError) -> Self {
        JobsError::Engine {
            job: job.to_string(),
            source: Box::new(source),
        }
    }
}

/// One job as the API sees it: running (or stopped in this process), stopped before this
/// process started, or one this process could not start again.
#[derive(Clone)]
pub enum JobEntry {
    Live(Runtime),
    Dormant(Arc<Job>),
    /// Listed as `failed` with the reason; submitting it again (possibly from a savepoint) is
    /// how it recovers.
    Failed(Arc<Job>, String),
}

impl JobEntry {
    pub fn job(&self) -> &Job {
        match self {
            JobEntry::Live(runtime) => runtime.job(),
            JobEntry::Dormant(job) | JobEntry::Failed(job, _) => job,
        }
    }

    pub fn runtime(&self) -> Option<&Runtime> {
        match self {
            JobEntry::Live(runtime) => Some(runtime),
            JobEntry::Dormant(_) | JobEntry::Failed(..) => None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.runtime().is_some_and(Runtime::is_running)
    }

    pub fn status(&self) -> JobStatus {
        match self {
            JobEntry::Live(runtime) => runtime.status(),
            // Nothing ran in this process: no partitions, no counters.
            JobEntry::Dormant(job) => {
                JobCounters::new(job, 0).snapshot(&job.name, "stopped", |_| 0)
            }
            JobEntry::Failed(job, reason) => {
                let mut status = JobCounters::new(job, 0).snapshot(&job.name, "failed", |_| 0);
                status.error = Some(reason.clone());
                status
            }
        }
    }
}

/// The jobs of this process. Cheap to share (`Arc`); submissions and stops are serialized.
pub struct JobManager {
    configured: Runtime,
    /// `None`: this deployment runs only its configured job (a Kafka consumer-group worker).
    launcher: Option<Arc<dyn JobLauncher>>,
    catalog: Option<JobCatalog>,
    submitted: Mutex<BTreeMap<String, JobEntry>>,
    /// Held across a whole submission or stop, so two cannot interleave.
    changes: Mutex<()>,
    /// Why submission is refused, when there is no launcher.
    unsupported: String,
}

impl JobManager {
    /// A process that runs only its configured job; `why` tells a caller of `POST /jobs` so.
    pub fn single(configured: Runtime, why: impl Into<String>) -> Self {
        Self {
            configured,
            launcher: None,
            catalog: None,
            submitted: Mutex::new(BTreeMap::new()),
            changes: Mutex::new(()),
            unsupported: why.into(),
        }
    }

    /// A process that also runs submitted jobs, remembered in `catalog`.
    pub fn new(configured: Runtime, launcher: Arc<dyn JobLauncher>, catalog: JobCatalog) -> Self {
        Self {
            launcher: Some(launcher),
            catalog: Some(catalog),
            ..Self::single(configured, String::new())
        }
    }

    /// Starts every catalogued job that was running when the process stopped, and lists the
    /// stopped ones. A job that cannot start again is listed as `failed` with the reason (and
    /// logged as an error) while the others run; only an unreadable catalog fails the start-up.
    pub fn resume(&self) -> Result<usize, JobsError> {
        let (Some(launcher), Some(catalog)) = (&self.launcher, &self.catalog) else {
            return Ok(0);
        };
        let mut started = 0;
        for entry in catalog.entries()? {
            let job = match entry.spec.validate() {
                Ok(job) => job,
                Err(err) => {
                    tracing::error!(job = %entry.spec.name, error = %err, "a submitted job's definition is not valid; it is not started (submit it again to fix it)");
                    continue;
                }
            };
            if job.name == self.configured.job().name {
                tracing::warn!(job = %job.name, "a submitted job has the configured job's name; the config file wins and the submitted one is not started");
                continue;
            }
            let name = job.name.clone();
            let slot = if entry.running {
                let kept = Arc::new(job.clone());
                match launcher.launch(job, StartFrom::LatestCheckpoint, entry.start.clone()) {
                    Ok(runtime) => {
                        started += 1;
                        tracing::info!(job = %name, "resumed a submitted job");
                        JobEntry::Live(runtime)
                    }
                    Err(err) => {
                        tracing::error!(job = %name, error = %err, "a submitted job cannot start again; it is listed as failed, and the log keeps its unread events until it is stopped (DELETE /jobs/{{id}}) or submitted again");
                        launcher.keep(&name);
                        JobEntry::Failed(kept, err.to_string())
                    }
                }
            } else {
                JobEntry::Dormant(Arc::new(job))
            };
            self.lock_submitted().insert(name, slot);
        }
        Ok(started)
    }

    fn lock_submitted(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, JobEntry>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.submitted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job the config file defines (HTTP ingest counts its events there).
    pub fn configured(&self) -> &Runtime {
        &self.configured
    }

    /// The job called `name`, or the configured job when `name` is `None`.
    pub fn get(&self, name: Option<&str>) -> Result<JobEntry, JobsError> {
        match name {
            None => Ok(JobEntry::Live(self.configured.clone())),
            Some(name) if name == self.configured.job().name => {
                Ok(JobEntry::Live(self.configured.clone()))
            }
            Some(name) => self
                .lock_submitted()
                .get(name)
                .cloned()
                .ok_or_else(|| JobsError::NotFound(name.to_string())),
        }
    }

    /// Every job: the configured one first, then the submitted ones by name.
    pub fn list(&self) -> Vec<JobEntry> {
        let mut all = vec![JobEntry::Live(self.configured.clone())];
        all.extend(self.lock_submitted().values().cloned());
        all
    }

    /// Whether any job still takes input.
    pub fn any_running(&self) -> bool {
        self.list().iter().any(JobEntry::is_running)
    }

    /// The first job that stopped on an error of its own, and why.
    pub fn failure(&self) -> Option<String> {
        self.list().iter().find_map(|entry| {
            let runtime = entry.runtime()?;
            runtime
                .failure()
                .map(|reason| format!("job '{}': {reason}", runtime.job().name))
        })
    }

    /// Starts a submitted job (or resumes a stopped one) and records it in the catalog.
    pub fn submit(&self, submission: Submission) -> Result<Runtime, JobsError> {
        let (Some(launcher), Some(catalog)) = (&self.launcher, &self.catalog) else {
            return Err(JobsError::Unsupported(self.unsupported.clone()));
        };
        let job = submission.spec.validate().map_err(JobsError::Invalid)?;
        let name = job.name.clone();
        if name == self.configured.job().name {
            return Err(JobsError::Configured(name));
        }
        if job.event != self.configured.job().event {
            // Events are parsed once, at ingest, with the configured job's field names; the log
            // holds them parsed, so another mapping could never apply.
            return Err(JobsError::Invalid(ConfigError {
                key: "event".into(),
                reason: "events are parsed once, at ingest, with the field names of the config \
                         file's job: omit `event` (or repeat the config file's)"
                    .into(),
            }));
        }
        let _change = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        {
            let submitted = self.lock_submitted();
            if submitted.get(&name).is_some_and(JobEntry::is_running) {
                return Err(JobsError::Running(name));
            }
            let running = submitted.values().filter(|e| e.is_running()).count();
            if running >= MAX_RUNNING_SUBMITTED {
                return Err(JobsError::Unsupported(format!(
                    "{running} submitted jobs run already, the most one process runs; stop one \
                     (DELETE /jobs/{{id}}) first"
                )));
            }
        }
        let position = match submission.position {
            InitialPosition::Latest => InitialPosition::Offsets(launcher.end_offsets()),
            other => other,
        };
        let from = match submission.from_savepoint {
            Some(savepoint) => StartFrom::Savepoint(savepoint),
            None => StartFrom::LatestCheckpoint,
        };
        // Recorded before it starts, so that a crash once it has written anything still finds
        // it in the catalog (and restarts it) instead of leaving state that no listing shows.
        let previous = catalog.entry(&name)?;
        catalog.save(&CatalogEntry {
            spec: submission.spec,
            start: position.clone(),
            running: true,
        })?;
        let was_failed = matches!(self.lock_submitted().get(&name), Some(JobEntry::Failed(..)));
        let runtime = match launcher.launch(job, from, position) {
            Ok(runtime) => runtime,
            Err(source) => {
                if was_failed {
                    // Its earlier run's unread input is still needed.
                    launcher.keep(&name);
                }
                let undone = match &previous {
                    Some(previous) => catalog.save(previous),
                    None => catalog.delete(&name),
                };
                if let Err(err) = undone {
                    tracing::error!(job = %name, error = %err, "cannot undo the catalog entry of a job that did not start");
                }
                return Err(JobsError::engine(&name, source));
            }
        };
        tracing::info!(job = %name, "started a submitted job");
        self.lock_submitted()
            .insert(name, JobEntry::Live(runtime.clone()));
        Ok(runtime)
    }

    /// Stops job `name` with a final checkpoint, which is also kept as `savepoint` when asked
    /// (if that savepoint cannot be taken, the job keeps running). A submitted job is marked
    /// stopped in the catalog, so a restart does not start it again, and no longer holds log
    /// retention back. The configured job stays attached to the log: it resumes when the
    /// process restarts. Stopping a stopped job does nothing (a savepoint of it is refused).
    pub fn stop(&self, name: &str, savepoint: Option<&str>) -> Result<JobEntry, JobsError> {
        let _change = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.get(Some(name))?;
        let engine = |source| JobsError::engine(name, source);
        if entry.runtime().is_some_and(Runtime::is_remote) {
            return Err(JobsError::Unsupported(
                "this process only serves the job's results (streampulse serve); stop the job's \
                 workers to stop it"
                    .into(),
            ));
        }
        let was_running = entry.is_running();
        let failed = matches!(entry, JobEntry::Failed(..));
        match (entry.runtime(), savepoint) {
            (Some(runtime), Some(savepoint)) if was_running => {
                runtime.stop_with_savepoint(savepoint).map_err(engine)?;
            }
            (_, Some(_)) => return Err(engine(EngineError::Stopping)),
            (Some(runtime), None) => runtime.shutdown().map_err(engine)?,
            (None, None) => {}
        }
        if name != self.configured.job().name && (was_running || failed) {
            if let Some(catalog) = &self.catalog {
                if let Some(mut stored) = catalog.entry(name)? {
                    stored.running = false;
                    catalog.save(&stored)?;
                }
            }
            if let Some(launcher) = &self.launcher {
                launcher.detach(name);
            }
        }
        Ok(entry)
    }

    /// Stops every running job with a final checkpoint; the first error is returned after all
    /// were asked to stop.
    pub fn shutdown_all(&self) -> Result<(), JobsError> {
        let mut first = None;
        for entry in self.list() {
            if let Some(runtime) = entry.runtime() {
                if let Err(source) = runtime.shutdown() {
                    tracing::error!(job = %runtime.job().name, error = %source, "final checkpoint failed");
                    first.get_or_insert(JobsError::engine(&runtime.job().name, source));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use streampulse_core::job::JobSpec;

    use super::*;
    use crate::checkpoint::open_storage;
    use crate::feed::LiveFeed;
    use crate::runtime::RuntimeParts;

    /// A launcher whose launches fail, recording what the manager asks of it.
    #[derive(Default)]
    struct Refusing {
        kept: Mutex<Vec<String>>,
        detached: Mutex<Vec<String>>,
    }

    impl JobLauncher for Refusing {
        fn launch(&self, _: Job, _: StartFrom, _: InitialPosition) -> Result<Runtime, EngineError> {
            Err(EngineError::Stopping)
        }
        fn end_offsets(&self) -> Vec<u64> {
            vec![0]
        }
        fn detach(&self, job: &str) {
            self.detached.lock().unwrap().push(job.to_string());
        }
        fn keep(&self, job: &str) {
            self.kept.lock().unwrap().push(job.to_string());
        }
    }

    fn job(name: &str) -> Job {
        JobSpec {
            name: name.into(),
            ..JobSpec::default()
        }
        .validate()
        .expect("valid job")
    }

    /// A runtime that drives nothing: the configured job of the manager under test.
    fn idle_runtime(job: Job) -> Runtime {
        let (control, requests) = mpsc::channel();
        let driver = std::thread::spawn(move || while requests.recv().is_ok() {});
        Runtime::from_parts(RuntimeParts {
            counters: Arc::new(JobCounters::new(&job, 1)),
            job,
            ingest_log: None,
            webhooks: None,
            feed: LiveFeed::new(1),
            control,
            driver,
            log_end: Arc::new(|_| 0),
            failure: Arc::new(Mutex::new(None)),
        })
    }

    #[test]
    fn a_job_that_cannot_resume_is_listed_failed_and_keeps_its_unread_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog =
            JobCatalog::new(open_storage(&dir.path().display().to_string()).expect("storage"));
        for (name, running) in [("broken", true), ("stopped", false)] {
            catalog
                .save(&CatalogEntry {
                    spec: JobSpec {
                        name: name.into(),
                        ..JobSpec::default()
                    },
                    start: InitialPosition::Earliest,
                    running,
                })
                .expect("save");
        }
        let launcher = Arc::new(Refusing::default());
        let manager = JobManager::new(idle_runtime(job("default")), launcher.clone(), catalog);
        assert_eq!(manager.resume().expect("resume"), 0);
        // The log keeps what the failed job has not read; nothing is detached.
        assert_eq!(*launcher.kept.lock().unwrap(), ["broken"]);
        assert!(launcher.detached.lock().unwrap().is_empty());
        let broken = manager.get(Some("broken")).expect("listed");
        let status = broken.status();
        assert_eq!(status.state, "failed");
        assert!(status.error.is_some_and(|e| !e.is_empty()));
        assert_eq!(
            manager.get(Some("stopped")).expect("listed").status().state,
            "stopped"
        );
        // Stopping the failed job releases its hold.
        manager.stop("broken", None).expect("stop");
        assert_eq!(*launcher.detached.lock().unwrap(), ["broken"]);
    }
}
