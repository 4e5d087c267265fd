//! The live feed: window results and alert transitions as they are stored, for push clients
//! (the WebSocket API).
//!
//! A bounded broadcast ring: publishing never blocks and never allocates when nobody listens; a
//! subscriber that falls more than the ring's capacity behind loses the oldest messages and is
//! told how many (tokio's `broadcast` lag), so a slow client can neither slow the engine nor grow
//! memory. The feed is a live view, not a record: after a crash, replayed outputs are published
//! again (with the same values), and the store remains the source of truth.

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

#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<Emission>>,
    /// Messages that subscribers missed by lagging, all subscribers together.
    lagged: Arc<AtomicU64>,
}

impl LiveFeed {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            lagged: Arc::default(),
        }
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
                Output::Result(r) => Emission::Result(r.clone()),
                Output::Alert(a) => Emission::Alert(a.clone()),
                Output::Retract { .. }
                | Output::Late(_)
                | Output::Metric { .. }
                | Output::Raw(_) => continue,
            };
            // An error only means every subscriber left in the meantime.
            let _ = self.tx.send(Arc::new(emission));
        }
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
    fn publishing_without_subscribers_is_a_no_op() {
        let feed = LiveFeed::new(4);
        feed.publish(&[result(1)]);
        let mut late_joiner = feed.subscribe();
        assert!(late_joiner.try_recv().is_err());
    }
}
