//! Counters every client keeps, and the optional StatsD export.
//!
//! Every client counts batches, retries, reconnects and bytes in atomics ([`StatsSnapshot`],
//! from each client's `stats()`); clones of a client share them. With `statsd(...)` on the
//! builder (off by default) it also sends, under the caller's prefix:
//!
//! | Name | Type | What |
//! |---|---|---|
//! | `sent_tt_ms` | timer | time to send a batch: WebSocket, until its frame is written; REST and gRPC, the whole `send` including retries |
//! | `ack_tt_ms` | timer | from a batch's first send to its successful reply |
//! | `total_bytes_sent` | counter | request bytes (bodies, frames, gRPC messages), retries included |
//! | `total_bytes_received` | counter | reply bytes |
//! | `total_conn_err` | counter | failed connection attempts and connections lost |
//!
//! Sending a StatsD packet is one non-blocking UDP send; a failed one is ignored.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use cadence::{Counted, StatsdClient, Timed, UdpMetricSink};

/// What a client (and its clones) did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Batches written (first attempts).
    pub batches_sent: u64,
    /// Batches answered with success.
    pub batches_acked: u64,
    /// Batches that ended in an error (after any retries).
    pub batches_failed: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// WebSocket reconnections that succeeded.
    pub reconnects: u64,
    /// Failed connection attempts and connections lost (`total_conn_err`).
    pub conn_errors: u64,
    /// Request bytes written.
    pub bytes_sent: u64,
    /// Reply bytes read.
    pub bytes_received: u64,
    /// WebSocket acks dropped because the subscriber's buffer was full.
    pub acks_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches_sent: AtomicU64,
    batches_acked: AtomicU64,
    batches_failed: AtomicU64,
    retries: AtomicU64,
    reconnects: AtomicU64,
    conn_errors: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    acks_dropped: AtomicU64,
}

/// A client's counters and its StatsD client, if any. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct Stats {
    counters: Arc<Counters>,
    statsd: Option<Arc<StatsdClient>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats").field("counters", &self.counters).field("statsd", &self.statsd.is_some()).finish()
    }
}

/// A StatsD client sending UDP packets to `addr`.
pub(crate) fn udp_client(addr: &str, prefix: &str) -> Result<StatsdClient, String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("statsd socket: {e}"))?;
    socket.set_nonblocking(true).map_err(|e| format!("statsd socket: {e}"))?;
    let sink = UdpMetricSink::from(addr, socket).map_err(|e| format!("statsd address {addr:?}: {e}"))?;
    Ok(StatsdClient::from_sink(prefix, sink))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Stats {
    pub(crate) fn with_statsd(client: StatsdClient) -> Stats {
        Stats { counters: Arc::default(), statsd: Some(Arc::new(client)) }
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let c = &*self.counters;
        StatsSnapshot {
            batches_sent: c.batches_sent.load(Relaxed),
            batches_acked: c.batches_acked.load(Relaxed),
            batches_failed: c.batches_failed.load(Relaxed),
            retries: c.retries.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
            conn_errors: c.conn_errors.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
            acks_dropped: c.acks_dropped.load(Relaxed),
        }
    }

    /// One attempt's request bytes went out; `retry` when it was not the first attempt.
    pub(crate) fn wrote(&self, bytes: usize, retry: bool) {
        let c = &*self.counters;
        if retry {
            c.retries.fetch_add(1, Relaxed);
        } else {
            c.batches_sent.fetch_add(1, Relaxed);
        }
        c.bytes_sent.fetch_add(bytes as u64, Relaxed);
        if let Some(s) = &self.statsd {
            let _ = s.count("total_bytes_sent", bytes as i64);
        }
    }

    /// The time it took to send a batch.
    pub(crate) fn sent_in(&self, elapsed: Duration) {
        if let Some(s) = &self.statsd {
            let _ = s.time("sent_tt_ms", millis(elapsed));
        }
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.counters.bytes_received.fetch_add(bytes as u64, Relaxed);
        if let Some(s) = &self.statsd {
            let _ = s.count("total_bytes_received", bytes as i64);
        }
    }

    /// A batch ended: acknowledged after `elapsed` since its first send, or failed.
    pub(crate) fn finished(&self, ok: bool, elapsed: Duration) {
        if ok {
            self.counters.batches_acked.fetch_add(1, Relaxed);
            if let Some(s) = &self.statsd {
                let _ = s.time("ack_tt_ms", millis(elapsed));
            }
        } else {
            self.counters.batches_failed.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn conn_error(&self) {
        self.counters.conn_errors.fetch_add(1, Relaxed);
        if let Some(s) = &self.statsd {
            let _ = s.count("total_conn_err", 1);
        }
    }

    pub(crate) fn reconnected(&self) {
        self.counters.reconnects.fetch_add(1, Relaxed);
    }

    pub(crate) fn ack_dropped(&self) {
        self.counters.acks_dropped.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsd_packets_carry_the_seed_names() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let stats = Stats::with_statsd(udp_client(&receiver.local_addr().unwrap().to_string(), "app").unwrap());
        stats.wrote(42, false);
        stats.sent_in(Duration::from_millis(3));
        stats.received(7);
        stats.finished(true, Duration::from_millis(9));
        stats.conn_error();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while got.len() < 5 {
            let n = receiver.recv(&mut buf).expect("a StatsD packet within 5 s");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            got,
            [
                "app.total_bytes_sent:42|c",
                "app.sent_tt_ms:3|ms",
                "app.total_bytes_received:7|c",
                "app.ack_tt_ms:9|ms",
                "app.total_conn_err:1|c"
            ]
        );
        let snap = stats.snapshot();
        assert_eq!((snap.batches_sent, snap.bytes_sent, snap.batches_acked, snap.conn_errors), (1, 42, 1, 1));
    }
}
