//! The live feed: window results and alert transitions as they are stored, for push clients
//! (the WebSocket API).
//!
//! A bounded broadcast ring: publishing never blocks and never allocates when nobody listens; a
//! subscriber that falls more than the ring's capacity behind loses the oldest messages and is
//! told how many (tokio's `broadcast` lag), so a slow client can neither slow the engine nor grow
//! memory. The feed is a live view, not a record: after a crash, replayed outputs are published
//! again (with the same values), and the store remains the source of truth.
//!
//! In a consumer group each worker runs only some partitions, so a feed fed by its own outputs
//! would show a client a fraction of the metrics. There the results and alerts reach the feed
//! from the output topics instead ([`FromElsewhere`], filled by the Kafka crate's follower),
//! and the worker's own copies are not published twice.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use streampulse_core::detect::Alert;
use streampulse_core::output::{Output, WindowResult};
use tokio::sync::broadcast;

/// Messages kept for subscribers that fall behind.
pub const LIVE_FEED_CAPACITY: usize = 8192;

#[derive(Debug, Clone)]
pub enum Emission {
    Result(WindowResult),
    /// A window that has not fired yet, as it stands (early firing); never stored.
    Partial(WindowResult),
    Alert(Alert),
}

/// Which outputs reach a feed from elsewhere ([`LiveFeed::publish_remote`]) rather than from
/// this process's partitions ([`LiveFeed::publish`], which then skips them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FromElsewhere {
    pub results: bool,
    pub alerts: bool,
}

#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<Emission>>,
    /// Messages that subscribers missed by lagging, all subscribers together.
    lagged: Arc<AtomicU64>,
    elsewhere: FromElsewhere,
}

impl LiveFeed {
    pub fn new(capacity: usize) -> Self {
        Self::fed_from(capacity, FromElsewhere::default())
    }

    /// A feed whose results and/or alerts (per `elsewhere`) come through
    /// [`Self::publish_remote`].
    pub fn fed_from(capacity: usize, elsewhere: FromElsewhere) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            lagged: Arc::default(),
            elsewhere,
        }
    }

    /// Which outputs this feed takes from elsewhere.
    pub fn elsewhere(&self) -> FromElsewhere {
        self.elsewhere
    }

    /// Subscribers now (WebSocket clients).
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Counts messages a subscriber missed (see [`broadcast::error::RecvError::Lagged`]).
    pub fn record_lagged(&self, skipped: u64) {
        self.lagged.fetch_add(skipped, Relaxed);
    }

    /// Messages missed by lagging subscribers since the start.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Relaxed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Emission>> {
        self.tx.subscribe()
    }

    /// Publishes early-firing partial results (see [`Emission::Partial`]).
    pub fn publish_partials(&self, results: Vec<WindowResult>) {
        for r in results {
            let _ = self.tx.send(Arc::new(Emission::Partial(r)));
        }
    }

    /// Publishes the results and alerts among `outputs` (after they are stored).
    pub fn publish(&self, outputs: &[Output]) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        for output in outputs {
            let emission = match output {
                Output::Result(r) if !self.elsewhere.results => Emission::Result(r.clone()),
                Output::Alert(a) if !self.elsewhere.alerts => Emission::Alert(a.clone()),
                Output::Result(_) | Output::Alert(_) => continue,
                Output::Retract { .. }
                | Output::Late(_)
                | Output::Metric { .. }
                | Output::Raw(_) => continue,
            };
            // An error only means every subscriber left in the meantime.
            let _ = self.tx.send(Arc::new(emission));
        }
    }

    /// Publishes a result or alert that some other process stored (read from an output topic).
    pub fn publish_remote(&self, emission: Emission) {
        let _ = self.tx.send(Arc::new(emission));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streampulse_core::aggregate::Accumulator;

    fn result(i: i64) -> Output {
        let mut acc = Accumulator::new(false);
        acc.add(i, 1.0);
        Output::Result(WindowResult::from_accumulator(
            "m",
            "w",
            (i, i + 1),
            &acc,
            &[],
            0,
        ))
    }

    #[test]
    fn a_lagging_subscriber_is_told_how_much_it_missed() {
        let feed = LiveFeed::new(4);
        let mut slow = feed.subscribe();
        let outputs: Vec<Output> = (0..10).map(result).collect();
        feed.publish(&outputs);
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(6))
        ));
        let Ok(next) = slow.try_recv() else {
            panic!("the newest 4 are kept")
        };
        assert!(matches!(&*next, Emission::Result(r) if r.window_start == 6));
    }

    #[test]
    fn outputs_fed_from_elsewhere_are_not_published_twice() {
        let feed = LiveFeed::fed_from(
            8,
            FromElsewhere {
                results: true,
                alerts: false,
            },
        );
        let mut rx = feed.subscribe();
        feed.publish(&[result(1)]);
        assert!(
            rx.try_recv().is_err(),
            "the topic's copy is the one published"
        );
        let Output::Result(r) = result(2) else {
            unreachable!()
        };
        feed.publish_remote(Emission::Result(r));
        assert!(matches!(rx.try_recv().as_deref(), Ok(Emission::Result(r)) if r.window_start == 2));
    }

    #[test]
    fn publishing_without_subscribers_is_a_no_op() {
        let feed = LiveFeed::new(4);
        feed.publish(&[result(1)]);
        let mut late_joiner = feed.subscribe();
        assert!(late_joiner.try_recv().is_err());
    }
}
