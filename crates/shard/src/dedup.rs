//! Per-connection batch deduplication (`SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED`).
//!
//! Mobile clients resend a batch whose reply they did not see; on the same live connection the
//! second copy is dropped and answered. Three things differ from Raccoon, which kept every
//! `req_guid` of a connection in a set for its whole life:
//!
//! * **Bounded.** Only the last `SERVER_BATCH_DEDUP_WINDOW` answered guids are remembered (plus
//!   those still in flight, at most `SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES`), as 64-bit
//!   fingerprints keyed with a random seed per connection, not as strings: no allocation per batch
//!   once the window is full, up to about 50 bytes per remembered guid (hash map and queue at
//!   their power-of-two capacities). Two different guids share a fingerprint with
//!   probability 2^-64 per pair, so a live window of 256 wrongly drops a batch about once in
//!   7 * 10^16 batches.
//! * **Empty guids are never duplicates.** Raccoon dropped every empty-guid batch after the
//!   first; a batch without an id cannot be told from a new one, so it is always published.
//! * **No success before the original succeeds.** With `EVENT_ACK=1`, a copy that arrives while
//!   the original is still in flight waits for the original's outcome and gets the same reply;
//!   Raccoon answered success at once, even if the original then failed. A failed original is
//!   forgotten, so the client's next retry is published.
//! * **Never published twice, never dropped, across an outage.** An original answered "retry"
//!   before Kafka's outcome was known (its events still queued in librdkafka: a deadline passed,
//!   or Kafka became unreachable) stays remembered as pending. A copy that arrives meanwhile is
//!   answered "retry" at once and not published; once the original's final outcome arrives (the
//!   publisher's late ack), a delivered original makes the next copy a duplicate answered with
//!   success, and a failed one is forgotten so the next copy is published.
//!
//! Lives on: owning shard; shared by a connection's reader (which checks) and writer (which
//! settles delivery outcomes) through a [`RefCell`](std::cell::RefCell), never borrowed across an `.await`.

use std::collections::VecDeque;
use std::hash::BuildHasher;

/// What the reader does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New (or without a guid): publish it, then record it with
    /// [`published`](Dedup::published) under this fingerprint.
    Publish(Option<Fingerprint>),
    /// A copy of a batch already answered with success: answer success, publish nothing.
    AnsweredBefore,
    /// A copy of a batch still awaiting its delivery outcome: the writer answers it together
    /// with the original.
    WaitForOriginal,
    /// A copy of a batch answered "retry" while its events are still queued for Kafka: answer
    /// "retry" at once, publish nothing.
    StillPending,
}

/// A `req_guid`'s keyed 64-bit hash, valid only for the [`Dedup`] that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Published, outcome not known yet; `copies` duplicates wait for it.
    InFlight { copies: u32 },
    /// Answered "retry" early; its events are still queued for Kafka, the final outcome follows.
    Pending,
    /// Answered with success.
    Answered,
}

/// What a batch's answer means for the copies of it to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Delivered: later copies are duplicates.
    Delivered,
    /// Failed, nothing of it left queued: a later copy is published.
    Failed,
    /// Answered "retry" while its events are still queued for Kafka: later copies are answered
    /// "retry" until [`Dedup::settle_late`] brings the final outcome.
    StillPending,
}

/// The guids one connection has sent recently.
#[derive(Debug)]
pub struct Dedup {
    seed: foldhash::quality::RandomState,
    seen: foldhash::HashMap<u64, State>,
    /// Answered fingerprints, oldest first; in-flight ones are not here, so they are never
    /// evicted before their outcome is known.
    answered: VecDeque<u64>,
    window: usize,
}

impl Dedup {
    /// Remembers up to `window` answered guids (`window` >= 1).
    pub fn new(window: usize) -> Self {
        Dedup {
            seed: foldhash::quality::RandomState::default(),
            seen: foldhash::HashMap::default(),
            answered: VecDeque::new(),
            window: window.max(1),
        }
    }

    fn fingerprint(&self, req_guid: &str) -> Option<Fingerprint> {
        (!req_guid.is_empty()).then(|| Fingerprint(self.seed.hash_one(req_guid)))
    }

    /// Decides what to do with a batch. A batch to publish is recorded with
    /// [`published`](Self::published) once it is queued (the reader reads no other frame in
    /// between, so no copy can slip past).
    pub fn check(&mut self, req_guid: &str) -> Verdict {
        let Some(key) = self.fingerprint(req_guid) else { return Verdict::Publish(None) };
        match self.seen.get_mut(&key.0) {
            None => Verdict::Publish(Some(key)),
            Some(State::Answered) => Verdict::AnsweredBefore,
            Some(State::Pending) => Verdict::StillPending,
            Some(State::InFlight { copies }) => {
                *copies += 1;
                Verdict::WaitForOriginal
            }
        }
    }

    /// Records a batch queued for Kafka. `answered` is true when the client was answered with
    /// success already (`EVENT_ACK=0`); otherwise [`settle`](Self::settle) follows.
    pub fn published(&mut self, key: Option<Fingerprint>, answered: bool) {
        let Some(Fingerprint(key)) = key else { return };
        if answered {
            self.remember_answered(key);
        } else {
            self.seen.insert(key, State::InFlight { copies: 0 });
        }
    }

    /// Records a batch's answer. Returns how many copies waited for it; each gets the same
    /// reply. A failed batch is forgotten so that a retry is published.
    pub fn settle(&mut self, req_guid: &str, settled: Settled) -> u32 {
        let Some(Fingerprint(key)) = self.fingerprint(req_guid) else { return 0 };
        let copies = match self.seen.get(&key) {
            Some(State::InFlight { copies }) => *copies,
            // Published before dedup knew it (cannot happen) or answered already.
            _ => return 0,
        };
        match settled {
            Settled::Delivered => self.remember_answered(key),
            Settled::Failed => {
                self.seen.remove(&key);
            }
            Settled::StillPending => {
                self.seen.insert(key, State::Pending);
            }
        }
        copies
    }

    /// Records the final outcome of a batch answered early ([`Settled::StillPending`]).
    pub fn settle_late(&mut self, req_guid: &str, delivered: bool) {
        let Some(Fingerprint(key)) = self.fingerprint(req_guid) else { return };
        if self.seen.get(&key) != Some(&State::Pending) {
            return;
        }
        if delivered {
            self.remember_answered(key);
        } else {
            self.seen.remove(&key);
        }
    }

    fn remember_answered(&mut self, key: u64) {
        if self.seen.insert(key, State::Answered) == Some(State::Answered) {
            return;
        }
        self.answered.push_back(key);
        if self.answered.len() > self.window {
            if let Some(oldest) = self.answered.pop_front() {
                self.seen.remove(&oldest);
            }
        }
    }

    /// Guids remembered, answered or in flight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `guid` and, if it is to be published, records it.
    fn publish(dedup: &mut Dedup, guid: &str, answered: bool) {
        match dedup.check(guid) {
            Verdict::Publish(key) => dedup.published(key, answered),
            other => panic!("{guid:?} is not new: {other:?}"),
        }
    }

    #[test]
    fn a_guid_answered_before_is_a_duplicate_and_a_new_one_is_not() {
        let mut dedup = Dedup::new(8);
        assert!(matches!(dedup.check("a"), Verdict::Publish(Some(_))));
        publish(&mut dedup, "a", true);
        assert_eq!(dedup.check("a"), Verdict::AnsweredBefore);
        assert!(matches!(dedup.check("b"), Verdict::Publish(Some(_))));
    }

    #[test]
    fn empty_guids_are_always_published() {
        let mut dedup = Dedup::new(8);
        publish(&mut dedup, "", true);
        publish(&mut dedup, "", false);
        assert_eq!(dedup.check(""), Verdict::Publish(None));
        assert_eq!(dedup.settle("", Settled::Delivered), 0);
        assert_eq!(dedup.len(), 0);
    }

    #[test]
    fn copies_of_an_in_flight_batch_wait_and_share_its_success() {
        let mut dedup = Dedup::new(8);
        publish(&mut dedup, "a", false);
        assert_eq!(dedup.check("a"), Verdict::WaitForOriginal);
        assert_eq!(dedup.check("a"), Verdict::WaitForOriginal);
        assert_eq!(dedup.settle("a", Settled::Delivered), 2);
        assert_eq!(dedup.check("a"), Verdict::AnsweredBefore);
        // A second outcome for the same guid (cannot happen) answers nobody twice.
        assert_eq!(dedup.settle("a", Settled::Delivered), 0);
    }

    #[test]
    fn a_failed_batch_is_forgotten_so_its_retry_is_published() {
        let mut dedup = Dedup::new(8);
        publish(&mut dedup, "a", false);
        assert_eq!(dedup.check("a"), Verdict::WaitForOriginal);
        assert_eq!(dedup.settle("a", Settled::Failed), 1);
        assert!(matches!(dedup.check("a"), Verdict::Publish(Some(_))));
        assert_eq!(dedup.len(), 0);
    }

    #[test]
    fn a_batch_answered_early_is_published_once_whatever_its_final_outcome() {
        let mut dedup = Dedup::new(8);
        for (guid, delivered) in [("delivered", true), ("failed", false)] {
            publish(&mut dedup, guid, false);
            assert_eq!(dedup.check(guid), Verdict::WaitForOriginal);
            assert_eq!(dedup.settle(guid, Settled::StillPending), 1, "the waiting copy gets the same \"retry\"");
            assert_eq!(dedup.check(guid), Verdict::StillPending, "not published while the original is queued");
            assert_eq!(dedup.check(guid), Verdict::StillPending);
            dedup.settle_late(guid, delivered);
        }
        assert_eq!(dedup.check("delivered"), Verdict::AnsweredBefore, "delivered once: a copy is a duplicate");
        assert!(matches!(dedup.check("failed"), Verdict::Publish(Some(_))), "failed for good: a copy is published");
        // A late outcome for a guid not pending (cannot happen) changes nothing.
        dedup.settle_late("delivered", false);
        assert_eq!(dedup.check("delivered"), Verdict::AnsweredBefore);
    }

    #[test]
    fn the_window_keeps_the_latest_answered_guids_and_every_in_flight_one() {
        let mut dedup = Dedup::new(3);
        publish(&mut dedup, "in-flight", false);
        for guid in ["g0", "g1", "g2", "g3", "g4"] {
            publish(&mut dedup, guid, true);
        }
        assert_eq!(dedup.len(), 4);
        assert!(matches!(dedup.check("g1"), Verdict::Publish(Some(_))));
        assert_eq!(dedup.check("g2"), Verdict::AnsweredBefore);
        assert_eq!(dedup.check("g4"), Verdict::AnsweredBefore);
        assert_eq!(dedup.check("in-flight"), Verdict::WaitForOriginal);
        // Settling pushes the oldest answered guid out.
        assert_eq!(dedup.settle("in-flight", Settled::Delivered), 1);
        assert!(matches!(dedup.check("g2"), Verdict::Publish(Some(_))));
        assert_eq!(dedup.check("in-flight"), Verdict::AnsweredBefore);
        assert_eq!(dedup.len(), 3);
    }

    #[test]
    fn fingerprints_are_keyed_per_connection() {
        let (a, b) = (Dedup::new(1), Dedup::new(1));
        let guid = "5f1c0a52-9d6e-4a8f-bd43-2d2f7f8f7b11";
        assert_ne!(a.fingerprint(guid), b.fingerprint(guid));
    }
}
