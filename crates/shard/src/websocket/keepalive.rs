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
//! No task of its own: the connection's writer waits for its next message or [`Keepalive::next_wake`],
//! whichever comes first, and asks [`Keepalive::due`] what to do; the reader only records in a
//! [`Liveness`] (`Cell`s) whether it is waiting for the client. The socket has no read timeout;
//! this rule is the only one.
//!
//! Lives on: owning shard (!Send).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// What the reader tells the writer's keep-alive. Shared by the two tasks of one connection.
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

/// What keep-alive asks the writer to do at a wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepaliveAction {
    /// Nothing yet.
    Wait,
    /// Send a ping.
    Ping,
    /// The client left a ping unanswered for the pong wait: drop the connection.
    Silent,
}

/// The writer's keep-alive clock: a ping every `interval`, and silence judged by [`Liveness`].
///
/// Lives on: owning shard (!Send).
#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Duration,
    pong_wait: Duration,
    next_ping: Cell<Instant>,
}

impl Keepalive {
    /// The first ping goes `interval` from now.
    pub(crate) fn new(interval: Duration, pong_wait: Duration) -> Self {
        Keepalive { interval, pong_wait, next_ping: Cell::new(Instant::now() + interval) }
    }

    /// When keep-alive needs the writer next: the next ping, or the silent client's deadline.
    pub(crate) fn next_wake(&self, live: &Liveness) -> Instant {
        let next_ping = self.next_ping.get();
        live.deadline(self.pong_wait).map_or(next_ping, |deadline| deadline.min(next_ping))
    }

    /// What to do at `now`. A ping returned here counts as sent at `now`.
    pub(crate) fn due(&self, live: &Liveness, now: Instant) -> KeepaliveAction {
        if live.is_silent(now, self.pong_wait) {
            return KeepaliveAction::Silent;
        }
        if now >= self.next_ping.get() {
            live.pinged(now);
            self.next_ping.set(now + self.interval);
            return KeepaliveAction::Ping;
        }
        KeepaliveAction::Wait
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test thread waits for the executor it started
mod tests {
    use super::*;
    use glommio::channels::local_channel::{self, LocalSender};
    use glommio::{LocalExecutorBuilder, Placement};
    use std::rc::Rc;

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

    /// The writer's use of [`Keepalive`], alone: sleeps until its next wake-up and reports its
    /// pings and the silence (`None`) to `out`.
    async fn keepalive_loop(out: LocalSender<Option<()>>, live: Rc<Liveness>, interval: Duration, wait: Duration) {
        let keepalive = Keepalive::new(interval, wait);
        loop {
            let wake = keepalive.next_wake(&live);
            glommio::timer::sleep(wake.saturating_duration_since(Instant::now())).await;
            match keepalive.due(&live, Instant::now()) {
                KeepaliveAction::Wait => {}
                KeepaliveAction::Ping => {
                    let _ = out.try_send(Some(()));
                }
                KeepaliveAction::Silent => {
                    let _ = out.try_send(None);
                    return;
                }
            }
        }
    }

    /// Runs keep-alive against a fake reader that answers the first `answered` pings at once
    /// and then hears nothing. Returns the pings seen and when keep-alive gave up, if it did
    /// within `run`.
    fn pinger(interval: Duration, wait: Duration, answered: usize, run: Duration) -> (usize, Option<Duration>) {
        LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(512 << 10)
            .spawn(move || async move {
                let (tx, rx) = local_channel::new_unbounded();
                let live = Rc::new(Liveness::default());
                let start = Instant::now();
                let task = glommio::spawn_local(keepalive_loop(tx, Rc::clone(&live), interval, wait)).detach();
                let mut listening = Some(live.listen());
                let mut pings = 0;
                let mut silent_after = None;
                while start.elapsed() < run {
                    let next = glommio::timer::timeout(10 * MS, async { Ok(rx.recv().await) }).await;
                    match next {
                        Ok(Some(Some(()))) => {
                            pings += 1;
                            if pings <= answered {
                                // The pong arrives: the reader hears it and listens again.
                                drop(listening.take());
                                listening = Some(live.listen());
                            }
                        }
                        Ok(Some(None)) => {
                            silent_after = Some(start.elapsed());
                            break;
                        }
                        Ok(None) | Err(_) => {}
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
