//! Savepoints of a consumer group, coordinated through the checkpoint storage (see
//! `streampulse_engine::checkpoint::PartitionCheckpointStore::request_savepoint`): no worker
//! holds every partition, so the worker asked for a savepoint leaves a request there, and every
//! worker, looking every [`LOOK_EVERY`], checkpoints the partitions it owns and writes their
//! parts. The asking worker assembles the savepoint once every partition of the topic has its
//! part, and answers; past its deadline it gives up, says which partitions were missing, and the
//! group goes on. A request still there at twice that age lost the worker that asked (killed
//! meanwhile): any worker removes it, so that no one holds at it for good.
//!
//! Stop-with-savepoint stops the whole group at the savepoint: a worker that has written its
//! parts of a `stop` request processes nothing more (it stays in the group, paused, so that no
//! partition moves to a worker that would process past the savepoint), and stops once the
//! savepoint exists; if it was given up, it fetches again from its partitions' offsets what it
//! polled and dropped meanwhile, and goes on.
//!
//! Never writes a part for a partition this worker does not own, nor one taken before the
//! partition's outputs up to it were durable (parts follow a synchronous checkpoint).

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use streampulse_core::clock::now_ms;
use streampulse_engine::checkpoint::PartitionCheckpoint;
use streampulse_engine::EngineError;

use super::KafkaDriver;

/// How often every worker looks for requests (a listing of the checkpoint storage: on an object
/// store, a request that is billed).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// The least time a group savepoint may take before it is given up.
const MIN_WAIT: Duration = Duration::from_secs(60);

/// Who waits for a savepoint this worker was asked for.
pub(super) enum Reply {
    Savepoint(Sender<Result<String, EngineError>>),
    Stop(Sender<Result<Option<String>, EngineError>>),
}

struct Asked {
    name: String,
    reply: Reply,
    since: Instant,
}

/// This worker's part in the group's savepoints.
pub(super) struct GroupSavepoints {
    /// Partitions of the topic: a savepoint has a part for each.
    partitions: u32,
    wait: Duration,
    asked: Vec<Asked>,
    next_look: Instant,
    /// The `stop` request this worker has written its parts of: it processes nothing until the
    /// savepoint exists (then it stops) or was given up (then it resumes).
    stopping: Option<String>,
}

/// What the driver does after a look at the requests.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum After {
    GoOn,
    /// The group stopped at a savepoint: this worker stops too.
    Stop,
}

impl GroupSavepoints {
    pub(super) fn new(partitions: u32, checkpoint_interval: Duration) -> Self {
        Self {
            partitions,
            wait: MIN_WAIT.max(checkpoint_interval * 3),
            asked: Vec::new(),
            next_look: Instant::now(),
            stopping: None,
        }
    }

    /// Whether this worker is held at a savepoint of a stopping group: it must process nothing.
    pub(super) fn holding(&self) -> bool {
        self.stopping.is_some()
    }

    /// This worker was asked for savepoint `name` (`stop`: stop the group with it).
    pub(super) fn ask(&mut self, driver: &KafkaDriver, name: String, reply: Reply) {
        let stop = matches!(reply, Reply::Stop(_));
        let requested = driver
            .partitions
            .lock()
            .map_err(|_| EngineError::Poisoned("the owned partitions"))
            .and_then(|p| Ok(p.checkpoints.request_savepoint(&name, stop, now_ms())?));
        match requested {
            Ok(()) => {
                tracing::info!(savepoint = %name, stop, "savepoint of the group requested");
                self.asked.push(Asked {
                    name,
                    reply,
                    since: Instant::now(),
                });
                self.next_look = Instant::now();
            }
            Err(err) => answer(reply, Err(err)),
        }
    }

    /// Serves the requests of the group (every [`LOOK_EVERY`]) and answers this worker's own.
    pub(super) fn look(&mut self, driver: &KafkaDriver) -> After {
        let now = Instant::now();
        if now < self.next_look {
            return After::GoOn;
        }
        self.next_look = now + LOOK_EVERY;
        match self.serve(driver) {
            Ok(after) => after,
            Err(err) => {
                tracing::warn!(error = %err, "cannot serve the group's savepoint requests; trying again");
                After::GoOn
            }
        }
    }

    fn serve(&mut self, driver: &KafkaDriver) -> Result<After, EngineError> {
        let requests = {
            let parts = lock(driver)?;
            parts.checkpoints.savepoint_requests()?
        };
        let abandoned_before = now_ms().saturating_sub(2 * self.wait.as_millis() as i64);
        for request in &requests {
            if request.requested_ms < abandoned_before
                && !self.asked.iter().any(|a| a.name == request.name)
            {
                tracing::warn!(savepoint = %request.name, "a savepoint request outlived the worker that asked for it: removed");
                lock(driver)?.checkpoints.finish_savepoint(&request.name)?;
                continue;
            }
            self.write_parts(driver, &request.name)?;
            if request.stop && self.stopping.is_none() {
                tracing::info!(savepoint = %request.name, "the group stops at a savepoint: processing nothing more");
                self.stopping = Some(request.name.clone());
            }
        }
        if self.stopping.is_some() {
            // Also partitions assigned since: nothing of theirs is fetched.
            if let Ok(assigned) = driver.consumer.assignment() {
                let _ = driver.consumer.pause(&assigned);
            }
        }
        let mut after = After::GoOn;
        let asked = std::mem::take(&mut self.asked);
        for a in asked {
            match self.finish(driver, &a)? {
                Some(result) => {
                    let stops = matches!(a.reply, Reply::Stop(_)) && result.is_ok();
                    answer(a.reply, result);
                    if stops {
                        after = After::Stop;
                    }
                }
                None => self.asked.push(a),
            }
        }
        if let Some(name) = self.stopping.clone() {
            if !requests.iter().any(|r| r.name == name) {
                if lock(driver)?.checkpoints.savepoint_exists(&name)? {
                    tracing::info!(savepoint = %name, "the group stopped at the savepoint");
                    return Ok(After::Stop);
                }
                tracing::warn!(savepoint = %name, "the savepoint was given up: processing again");
                self.stopping = None;
                // What was polled while held was not processed: fetch it again.
                if let Err(err) = driver.refetch_owned() {
                    lock(driver)?.fatal.get_or_insert(format!(
                        "cannot read again what arrived while held at savepoint '{name}': {err}"
                    ));
                }
                if let Ok(assigned) = driver.consumer.assignment() {
                    let _ = driver.consumer.resume(&assigned);
                }
            }
        }
        Ok(after)
    }

    /// Checkpoints this worker's partitions that have no part of savepoint `name` yet, and
    /// writes their parts.
    fn write_parts(&self, driver: &KafkaDriver, name: &str) -> Result<(), EngineError> {
        let missing: Vec<u32> = {
            let parts = lock(driver)?;
            let have = parts.checkpoints.savepoint_parts(name)?;
            parts
                .owned
                .keys()
                .copied()
                .filter(|p| !have.contains(p))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        // Every output up to the parts' offsets durable (and, exactly once, committed) first.
        driver.checkpoint_all(CommitMode::Sync)?;
        let parts = lock(driver)?;
        let created = now_ms();
        for p in missing {
            let Some(owned) = parts.owned.get(&p) else {
                continue;
            };
            let state = match owned.task.snapshot(&parts.emitter.counters)? {
                Some(state) => state,
                // Nothing read yet (a `latest` start): the part resumes where the topic ends now.
                None => PartitionCheckpoint::of(p, driver.log_end(p), owned.task.pipeline())?,
            };
            parts
                .checkpoints
                .write_savepoint_part(name, created, state)?;
        }
        Ok(())
    }

    /// The answer to `asked`, once there is one: the savepoint's place, or why it was given up.
    fn finish(
        &self,
        driver: &KafkaDriver,
        asked: &Asked,
    ) -> Result<Option<Result<String, EngineError>>, EngineError> {
        let parts = lock(driver)?;
        let store = &parts.checkpoints;
        if let Some(at) = store.assemble_savepoint(&asked.name, self.partitions, now_ms())? {
            store.finish_savepoint(&asked.name)?;
            tracing::info!(savepoint = %asked.name, %at, "savepoint of the group taken");
            return Ok(Some(Ok(at)));
        }
        if asked.since.elapsed() < self.wait {
            return Ok(None);
        }
        let have = store.savepoint_parts(&asked.name)?;
        store.finish_savepoint(&asked.name)?;
        Ok(Some(Err(EngineError::SavepointIncomplete {
            name: asked.name.clone(),
            waited: self.wait,
            missing: (0..self.partitions).filter(|p| !have.contains(p)).collect(),
        })))
    }

    /// Answers every request still waiting: the worker stops.
    pub(super) fn abandon(&mut self) {
        for a in self.asked.drain(..) {
            answer(a.reply, Err(EngineError::Stopping));
        }
    }
}

fn lock(
    driver: &KafkaDriver,
) -> Result<std::sync::MutexGuard<'_, crate::partitions::Partitions>, EngineError> {
    driver
        .partitions
        .lock()
        .map_err(|_| EngineError::Poisoned("the owned partitions"))
}

fn answer(reply: Reply, result: Result<String, EngineError>) {
    match reply {
        Reply::Savepoint(tx) => {
            let _ = tx.send(result);
        }
        Reply::Stop(tx) => {
            let _ = tx.send(result.map(Some));
        }
    }
}
