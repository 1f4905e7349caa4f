//! Keep-alive of one WebSocket connection: the server's pings, and when a silent client is
//! dropped.
//!
//! The rule: the clock starts at the first ping a client leaves unanswered, that is a ping sent
//! while the reader was waiting for the client, with nothing heard from the client since. If
//! `SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS` passes on that clock with still nothing heard, the
//! connection is dropped (no close frame, as Raccoon). Any frame counts as an answer: pong, ping,
//! data. So a client that answers every ping within the pong wait is never dropped, for any ping
//! interval, and one that falls silent is dropped within pong wait + ping interval. While the
//! reader is not reading (the connection is at its in-flight limit or its publisher queue is
//! full) the clock does not run: the silence is the server's own backpressure.
//!
//! No task and no timer of its own: the connection's pinger task owns the deadline, and the
//! reader only records in a [`Liveness`] (`Cell`s) whether it is waiting for the client. The
//! socket has no read timeout; this rule is the only one.
//!
//! Lives on: owning shard (!Send).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::session::{Outbound, OutboundTx};

/// What the reader tells the pinger. Shared by the two tasks of one connection.
///
/// Lives on: owning shard (!Send).
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// When the first ping nothing has answered yet was sent.
    unanswered_since: Cell<Option<Instant>>,
    /// The reader is waiting for the client's next frame.
    listening: Cell<bool>,
}

/// Held by the reader while it waits for a frame; dropping it (a frame arrived, the read
/// failed, or the reader was cancelled) counts as hearing from the client.
pub(crate) struct Listening<'a>(&'a Liveness);

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        self.0.listening.set(false);
        self.0.unanswered_since.set(None);
    }
}

impl Liveness {
    /// The reader starts waiting for the client. Pings sent while it was not reading do not
    /// count against the client: their answers, if any, are about to be read.
    pub(crate) fn listen(&self) -> Listening<'_> {
        self.unanswered_since.set(None);
        self.listening.set(true);
        Listening(self)
    }

    /// A ping was queued at `now`: it starts the clock unless an earlier one is unanswered.
    fn pinged(&self, now: Instant) {
        if self.listening.get() && self.unanswered_since.get().is_none() {
            self.unanswered_since.set(Some(now));
        }
    }

    /// When the client is to be dropped unless it is heard from before.
    fn deadline(&self, pong_wait: Duration) -> Option<Instant> {
        if !self.listening.get() {
            return None;
        }
        self.unanswered_since.get().map(|since| since + pong_wait)
    }

    fn is_silent(&self, now: Instant, pong_wait: Duration) -> bool {
        self.deadline(pong_wait).is_some_and(|deadline| now >= deadline)
    }
}

/// Queues a ping every `interval`, and [`Outbound::Silent`] once the client has left a ping
/// unanswered for `pong_wait`. Ends then, or when the writer is gone.
pub(crate) async fn ping_loop(out: OutboundTx, live: Rc<Liveness>, interval: Duration, pong_wait: Duration) {
    let mut next_ping = Instant::now() + interval;
    loop {
        let wake = live.deadline(pong_wait).map_or(next_ping, |deadline| deadline.min(next_ping));
        glommio::timer::sleep(wake.saturating_duration_since(Instant::now())).await;
        let now = Instant::now();
        if live.is_silent(now, pong_wait) {
            let _ = out.try_send(Outbound::Silent);
            return;
        }
        if now >= next_ping {
            if out.try_send(Outbound::Ping).is_err() {
                return;
            }
            live.pinged(now);
            next_ping = now + interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::channels::local_channel;
    use glommio::{LocalExecutorBuilder, Placement};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_clock_starts_at_the_first_unanswered_ping_and_any_frame_stops_it() {
        let live = Liveness::default();
        let t0 = Instant::now();
        let wait = 100 * MS;
        live.pinged(t0);
        assert_eq!(live.deadline(wait), None, "not reading: the client is not at fault");
        let listening = live.listen();
        live.pinged(t0 + 10 * MS);
        live.pinged(t0 + 20 * MS);
        assert_eq!(live.deadline(wait), Some(t0 + 110 * MS), "counts from the first unanswered ping");
        assert!(!live.is_silent(t0 + 109 * MS, wait));
        assert!(live.is_silent(t0 + 110 * MS, wait));
        drop(listening);
        assert_eq!(live.deadline(wait), None, "a frame answers every ping before it");
        let _listening = live.listen();
        assert_eq!(live.deadline(wait), None);
        live.pinged(t0 + 30 * MS);
        assert_eq!(live.deadline(wait), Some(t0 + 130 * MS));
    }

    /// Runs the pinger against a fake reader that answers the first `answered` pings at once
    /// and then hears nothing. Returns the pings seen and when the pinger gave up, if it did
    /// within `run`.
    fn pinger(interval: Duration, wait: Duration, answered: usize, run: Duration) -> (usize, Option<Duration>) {
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(512 << 10)
            .spawn(move || async move {
                let (tx, rx) = local_channel::new_unbounded();
                let live = Rc::new(Liveness::default());
                let start = Instant::now();
                let task = glommio::spawn_local(ping_loop(Rc::new(tx), Rc::clone(&live), interval, wait)).detach();
                let mut listening = Some(live.listen());
                let mut pings = 0;
                let mut silent_after = None;
                while start.elapsed() < run {
                    let next = glommio::timer::timeout(10 * MS, async { Ok(rx.recv().await) }).await;
                    match next {
                        Ok(Some(Outbound::Ping)) => {
                            pings += 1;
                            if pings <= answered {
                                // The pong arrives: the reader hears it and listens again.
                                drop(listening.take());
                                listening = Some(live.listen());
                            }
                        }
                        Ok(Some(Outbound::Silent)) => {
                            silent_after = Some(start.elapsed());
                            break;
                        }
                        Ok(_) => panic!("the pinger queues only pings and Silent"),
                        Err(_) => {}
                    }
                }
                task.cancel();
                (pings, silent_after)
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_client_answering_every_ping_is_kept_when_interval_equals_pong_wait() {
        let (pings, silent) = pinger(40 * MS, 40 * MS, usize::MAX, 600 * MS);
        assert_eq!(silent, None, "dropped although it answered all {pings} pings");
        assert!(pings >= 10, "only {pings} pings in 600 ms at 40 ms");
    }

    #[test]
    fn a_silent_client_is_dropped_pong_wait_after_its_first_unanswered_ping() {
        // Never answers: first ping at 50 ms, dropped at 50 + 150 ms.
        let (pings, silent) = pinger(50 * MS, 150 * MS, 0, 2_000 * MS);
        let silent = silent.expect("silent client kept");
        assert!(silent >= 200 * MS && silent < 300 * MS, "dropped after {silent:?}");
        assert!((3..=5).contains(&pings), "{pings} pings");
        // Answers two pings (at 50 and 100 ms), then falls silent: dropped at 150 + 150 ms.
        let (_, silent) = pinger(50 * MS, 150 * MS, 2, 2_000 * MS);
        let silent = silent.expect("silent client kept");
        assert!(silent >= 300 * MS && silent < 400 * MS, "dropped after {silent:?}");
    }
}
