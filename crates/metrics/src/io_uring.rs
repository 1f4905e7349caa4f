//! io_uring counters per shard, read from the kernel rather than from glommio.
//!
//! glommio 0.9 counts only file I/O in its ring statistics, and a shard's work is sockets and
//! timers. The kernel shows every ring's positions in `/proc/self/fdinfo/<fd>`: `SqTail` advances
//! once per request the executor queues, `CqTail` once per completion the kernel posts. Each
//! shard's rings (glommio makes three per executor) are found once at startup (shards start one
//! at a time and the new `[io_uring]` descriptors are the new shard's), so a read never scans the
//! socket descriptors, and the registry turns the 32-bit ring positions into counters when it is
//! read (at each scrape or StatsD flush). A position wraps after 2^32 requests; two reads
//! further apart than that would under-count, which at one million requests a second is more
//! than an hour without a scrape.

use std::os::fd::RawFd;

use super::local::TagValues;

/// The descriptors of this process's io_uring instances, in ascending order.
pub fn ring_fds() -> Vec<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let mut fds: Vec<RawFd> = dir
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            (target.as_os_str() == "anon_inode:[io_uring]").then_some(fd)
        })
        .collect();
    fds.sort_unstable();
    fds
}

/// Positions of one ring: `(SqTail, CqTail)`.
fn parse_fdinfo(text: &str) -> Option<(u32, u32)> {
    let field = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u32>().ok())
    };
    Some((field("SqTail")?, field("CqTail")?))
}

/// One ring of one shard, and the positions it had at the last read.
#[derive(Debug)]
pub struct WatchedRing {
    /// The shard's tag values (`shard`).
    pub shard: TagValues,
    fd: RawFd,
    sq_tail: u32,
    cq_tail: u32,
}

impl WatchedRing {
    /// Watches ring `fd`, which was created with both positions at 0.
    pub fn new(shard: TagValues, fd: RawFd) -> Self {
        WatchedRing { shard, fd, sq_tail: 0, cq_tail: 0 }
    }

    /// Requests submitted and completions posted since the last read, or `None` when the ring
    /// cannot be read (the shard has stopped and its ring is gone).
    pub fn advance(&mut self) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", self.fd)).ok()?;
        let (sq, cq) = parse_fdinfo(&text)?;
        Some(self.advance_to(sq, cq))
    }

    fn advance_to(&mut self, sq: u32, cq: u32) -> (u64, u64) {
        let submitted = sq.wrapping_sub(std::mem::replace(&mut self.sq_tail, sq));
        let completed = cq.wrapping_sub(std::mem::replace(&mut self.cq_tail, cq));
        (u64::from(submitted), u64::from(completed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t280401\nSqMask:\t0x7f\nSqHead:\t13\n\
        SqTail:\t13\nCachedSqHead:\t13\nCqMask:\t0xff\nCqHead:\t10\nCqTail:\t11\nCachedCqTail:\t11\nSQEs:\t0\n";

    #[test]
    fn fdinfo_gives_both_tails() {
        assert_eq!(parse_fdinfo(FDINFO), Some((13, 11)));
        // A socket's fdinfo has neither.
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t9\nino:\t1234\n"), None);
    }

    #[test]
    fn positions_become_counts_across_a_wrap() {
        let mut ring = WatchedRing::new(Arc::from(Vec::new()), -1);
        assert_eq!(ring.advance_to(10, 7), (10, 7));
        assert_eq!(ring.advance_to(u32::MAX, u32::MAX - 1), (u64::from(u32::MAX) - 10, u64::from(u32::MAX) - 8));
        assert_eq!(ring.advance_to(u32::MAX, u32::MAX - 1), (0, 0));
        assert_eq!(ring.advance_to(4, 2), (5, 4));
        assert_eq!(ring.advance(), None, "no descriptor -1");
    }

    #[test]
    fn finds_a_glommio_executors_rings_and_reads_them() {
        let before = ring_fds();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 << 10)
            .spawn(move || async move {
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                tx.send(()).unwrap();
                let _ = stop_rx.recv();
            })
            .unwrap();
        rx.recv().unwrap();
        let new: Vec<RawFd> = ring_fds().into_iter().filter(|fd| !before.contains(fd)).collect();
        // Three per executor in glommio 0.9; another test's executor may add its own meanwhile.
        assert!(new.len() >= 3, "expected the executor's rings, found {new:?}");
        let mut rings: Vec<WatchedRing> = new.iter().map(|fd| WatchedRing::new(Arc::from(Vec::new()), *fd)).collect();
        let (submitted, completed) =
            rings.iter_mut().filter_map(WatchedRing::advance).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        // The timer alone was submitted and completed.
        assert!(submitted >= 1 && completed >= 1, "{submitted} submitted, {completed} completed");
        stop_tx.send(()).unwrap();
        executor.join().unwrap();
    }
}
