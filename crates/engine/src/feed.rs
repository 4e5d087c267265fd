//! The live feed: window results and alert transitions as they are stored, for push clients
//! (the WebSocket API).
//!
//! A bounded broadcast ring of chunks: each publish puts its emissions in chunks of at most
//! [`FEED_CHUNK`], so a window firing for ten thousand metrics takes about 160 slots, not ten
//! thousand, and a subscriber takes a chunk per wake-up and filters it in one pass.
//! Publishing never waits for a subscriber and never allocates when nobody listens (each chunk
//! takes a short lock, for its number); a subscriber that falls more
//! than the ring's [`LIVE_FEED_CAPACITY`] chunks behind loses the oldest and is told how many
//! messages (every message has a sequence number, so the count is exact), so a slow client can
//! neither slow the engine nor grow memory past the ring (a chunk is dropped once every
//! subscriber has read it). The feed is a live view, not a record: after a crash, replayed
//! outputs are published again (with the same values), and the store remains the source of
//! truth.
//!
//! In a consumer group each worker runs only some partitions, so a feed fed by its own outputs
//! would show a client a fraction of the metrics. There the results and alerts reach the feed
//! from the output topics instead ([`FromElsewhere`], filled by the Kafka crate's follower),
//! and the worker's own copies are not published twice.
//!
//! This module must never wait for a subscriber, and never filter for one: a subscription's
//! patterns are the client's cost, matched on its own task.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use streampulse_core::detect::Alert;
use streampulse_core::output::{Output, WindowResult};
use tokio::sync::broadcast;

/// Chunks kept for subscribers that fall behind: with [`FEED_CHUNK`], at most 65,536 messages
/// (a few tens of MiB), held only while some subscriber has not read them. A trickle of single
/// results takes a slot each. Chunks of 8 in 8,192 slots (as many slots as the old ring of
/// messages) brought pauses of 300-480 ms at 50 k events/s in every run measured.
pub const LIVE_FEED_CAPACITY: usize = 1024;

/// Most emissions in one chunk of the ring.
pub const FEED_CHUNK: usize = 64;

#[derive(Debug, Clone)]
pub enum Emission {
    Result(WindowResult),
    /// A window that has not fired yet, as it stands (early firing); never stored.
    Partial(WindowResult),
    Alert(Alert),
}

/// Emissions published together, numbered from `first` in the feed's order.
#[derive(Debug)]
pub struct Chunk {
    first: u64,
    emissions: Vec<Emission>,
}

impl Chunk {
    pub fn emissions(&self) -> &[Emission] {
        &self.emissions
    }
}

/// What a subscriber receives: a chunk, and how many messages it missed just before it.
#[derive(Debug)]
pub struct Delivery {
    /// Messages published between the last chunk this subscriber received and this one, which
    /// the ring dropped before it read them.
    pub skipped: u64,
    pub chunk: Arc<Chunk>,
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
    tx: broadcast::Sender<Arc<Chunk>>,
    /// The number of the next message; taken with the send, so chunks enter the ring in the
    /// order of their numbers.
    next: Arc<Mutex<u64>>,
    /// Messages that subscribers missed by lagging, all subscribers together.
    lagged: Arc<AtomicU64>,
    elsewhere: FromElsewhere,
}

/// One subscriber's end of a [`LiveFeed`].
pub struct Subscriber {
    rx: broadcast::Receiver<Arc<Chunk>>,
    /// The number of the next message this subscriber expects.
    next: u64,
}

impl Subscriber {
    /// The next chunk, with the messages missed before it; `None` once the feed is gone.
    /// Cancel-safe: a chunk is either returned or still in the ring.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            match self.rx.recv().await {
                Ok(chunk) => return Some(self.delivered(chunk)),
                // The next chunk's number says how many messages were lost.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// [`Subscriber::recv`] without waiting: `None` when nothing is there.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        loop {
            match self.rx.try_recv() {
                Ok(chunk) => return Some(self.delivered(chunk)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    }

    fn delivered(&mut self, chunk: Arc<Chunk>) -> Delivery {
        let skipped = chunk.first.saturating_sub(self.next);
        self.next = chunk.first + chunk.emissions.len() as u64;
        Delivery { skipped, chunk }
    }
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
            next: Arc::default(),
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

    /// Counts messages a subscriber missed (see [`Delivery::skipped`]).
    pub fn record_lagged(&self, skipped: u64) {
        self.lagged.fetch_add(skipped, Relaxed);
    }

    /// Messages missed by lagging subscribers since the start.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Relaxed)
    }

    pub fn subscribe(&self) -> Subscriber {
        // Under the numbering lock: the first chunk this subscriber sees is numbered from here.
        let next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        Subscriber {
            rx: self.tx.subscribe(),
            next: *next,
        }
    }

    /// Puts `emissions` in the ring as chunks of at most [`FEED_CHUNK`].
    fn send(&self, emissions: impl IntoIterator<Item = Emission>) {
        let mut emissions = emissions.into_iter().peekable();
        let mut chunks: Vec<Vec<Emission>> = Vec::new();
        while emissions.peek().is_some() {
            // Sized once (growing by doubling moved each emission about twice more), by the
            // upper bound of what is left: a publish of one emission takes room for one.
            let left = emissions.size_hint().1.unwrap_or(FEED_CHUNK);
            let mut chunk = Vec::with_capacity(left.clamp(1, FEED_CHUNK));
            chunk.extend(emissions.by_ref().take(FEED_CHUNK));
            chunks.push(chunk);
        }
        if chunks.is_empty() {
            return;
        }
        // One lock for the whole publish: partitions that took it chunk by chunk queued on it.
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        for chunk in chunks {
            let n = chunk.len() as u64;
            // An error only means every subscriber left in the meantime.
            let _ = self.tx.send(Arc::new(Chunk {
                first: *next,
                emissions: chunk,
            }));
            *next += n;
        }
    }

    /// Publishes early-firing partial results (see [`Emission::Partial`]).
    pub fn publish_partials(&self, results: Vec<WindowResult>) {
        self.send(results.into_iter().map(Emission::Partial));
    }

    /// Publishes the results and alerts among `outputs` (after they are stored). Takes them by
    /// value: a firing of thousands of windows published copies of each result, a third of its
    /// time from the batch's read to its publishing (BENCHMARKS (l)).
    pub fn publish(&self, outputs: impl IntoIterator<Item = Output>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let elsewhere = self.elsewhere;
        self.send(outputs.into_iter().filter_map(|output| match output {
            Output::Result(r) if !elsewhere.results => Some(Emission::Result(r)),
            Output::Alert(a) if !elsewhere.alerts => Some(Emission::Alert(a)),
            Output::Result(_) | Output::Alert(_) => None,
            Output::Retract { .. } | Output::Late(_) | Output::Metric { .. } | Output::Raw(_) => {
                None
            }
        }));
    }

    /// Publishes results or alerts that some other process stored (read from an output topic).
    pub fn publish_remote(&self, emissions: Vec<Emission>) {
        self.send(emissions);
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
            &"m".into(),
            &"w".into(),
            (i, i + 1),
            &acc,
            &[],
            0,
        ))
    }

    fn starts(d: &Delivery) -> Vec<i64> {
        d.chunk
            .emissions()
            .iter()
            .map(|e| match e {
                Emission::Result(r) | Emission::Partial(r) => r.window_start,
                Emission::Alert(_) => -1,
            })
            .collect()
    }

    #[test]
    fn a_burst_takes_a_slot_per_chunk() {
        let feed = LiveFeed::new(4);
        let mut rx = feed.subscribe();
        let n = 3 * FEED_CHUNK as i64 + 5;
        let outputs: Vec<Output> = (0..n).map(result).collect();
        feed.publish(outputs);
        let mut got = Vec::new();
        while let Some(d) = rx.try_recv() {
            assert_eq!(d.skipped, 0);
            assert!(d.chunk.emissions().len() <= FEED_CHUNK);
            got.extend(starts(&d));
        }
        assert_eq!(got, (0..n).collect::<Vec<_>>(), "every message, in order");
    }

    #[test]
    fn a_lagging_subscriber_is_told_how_many_messages_it_missed() {
        let feed = LiveFeed::new(2);
        let mut slow = feed.subscribe();
        let n = FEED_CHUNK as i64;
        // Five chunks into a ring of two: the first three are gone.
        for c in 0..5 {
            let outputs: Vec<Output> = (0..n).map(|i| result(c * n + i)).collect();
            feed.publish(outputs);
        }
        let Some(d) = slow.try_recv() else {
            panic!("the newest 2 chunks are kept")
        };
        assert_eq!(d.skipped, 3 * FEED_CHUNK as u64);
        assert_eq!(starts(&d).first(), Some(&(3 * n)));
        let Some(d) = slow.try_recv() else {
            panic!("and the last")
        };
        assert_eq!((d.skipped, starts(&d).first()), (0, Some(&(4 * n))));
        assert!(slow.try_recv().is_none());
    }

    #[test]
    fn a_subscriber_counts_from_when_it_joined() {
        let feed = LiveFeed::new(4);
        let _early = feed.subscribe();
        feed.publish([result(1), result(2)]);
        let mut late = feed.subscribe();
        feed.publish([result(3)]);
        let Some(d) = late.try_recv() else {
            panic!("published after it joined")
        };
        assert_eq!((d.skipped, starts(&d)), (0, vec![3]));
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
        feed.publish([result(1)]);
        assert!(
            rx.try_recv().is_none(),
            "the topic's copy is the one published"
        );
        let Output::Result(r) = result(2) else {
            unreachable!()
        };
        feed.publish_remote(vec![Emission::Result(r)]);
        let Some(d) = rx.try_recv() else {
            panic!("published from elsewhere")
        };
        assert_eq!(starts(&d), vec![2]);
    }

    #[test]
    fn publishing_without_subscribers_is_a_no_op() {
        let feed = LiveFeed::new(4);
        feed.publish([result(1)]);
        let mut late_joiner = feed.subscribe();
        assert!(late_joiner.try_recv().is_none());
    }
}
