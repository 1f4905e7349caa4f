//! CPU time and memory of a process, from `/proc/<pid>/stat` and `/proc/<pid>/status`: the
//! server's (given `--server-pid`) and the load generator's own. The workspace's one reader of
//! them: the server's tests sample its memory through [`sample`] too.

use std::time::Instant;

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ: 100 on every Linux architecture).
const USER_HZ: f64 = 100.0;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// This process.
    Own,
    /// Another one, by id.
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::Own => "/proc/self".to_owned(),
            Pid::Other(pid) => format!("/proc/{pid}"),
        }
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was read.
    pub at: Instant,
    /// User plus system CPU time so far, seconds (all threads).
    pub cpu_seconds: f64,
    /// Resident set size now (`VmRSS`), bytes.
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
}

/// Reads `pid` now; the error names the file that could not be read or parsed.
pub fn sample(pid: Pid) -> Result<Sample, String> {
    let dir = pid.dir();
    let stat_path = format!("{dir}/stat");
    let stat = std::fs::read_to_string(&stat_path).map_err(|e| format!("{stat_path}: {e}"))?;
    let cpu_seconds = cpu_ticks(&stat).ok_or_else(|| format!("{stat_path}: unexpected format"))? / USER_HZ;
    let status_path = format!("{dir}/status");
    let status = std::fs::read_to_string(&status_path).map_err(|e| format!("{status_path}: {e}"))?;
    let kib = |field: &str| status_kib(&status, field).ok_or_else(|| format!("{status_path}: no {field}"));
    Ok(Sample {
        at: Instant::now(),
        cpu_seconds,
        rss_bytes: kib("VmRSS:")? * 1024,
        peak_rss_bytes: kib("VmHWM:")? * 1024,
    })
}

/// `utime + stime` in ticks. Fields after the command name (which may hold spaces and
/// parentheses) start after the last `)`; utime and stime are fields 14 and 15 of the line.
fn cpu_ticks(stat: &str) -> Option<f64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`, in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// What a process used between two samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    /// CPU seconds used.
    pub(crate) cpu_seconds: f64,
    /// CPU seconds per wall-clock second, as a percentage of one core.
    pub(crate) cpu_percent: f64,
    /// RSS at the second sample, bytes.
    pub(crate) rss_bytes: u64,
    /// Peak RSS at the second sample, bytes.
    pub(crate) peak_rss_bytes: u64,
}

impl Usage {
    /// From `before` to `after`.
    pub(crate) fn between(before: &Sample, after: &Sample) -> Usage {
        let cpu_seconds = (after.cpu_seconds - before.cpu_seconds).max(0.0);
        let wall = after.at.duration_since(before.at).as_secs_f64();
        Usage {
            cpu_seconds,
            cpu_percent: if wall > 0.0 { 100.0 * cpu_seconds / wall } else { 0.0 },
            rss_bytes: after.rss_bytes,
            peak_rss_bytes: after.peak_rss_bytes,
        }
    }

    /// As JSON, with CPU microseconds per unit of `work` (events) when there was any.
    pub(crate) fn json(&self, work: u64) -> serde_json::Value {
        serde_json::json!({
            "cpu_seconds": self.cpu_seconds,
            "cpu_percent": self.cpu_percent,
            "cpu_us_per_event": (work > 0).then(|| self.cpu_seconds * 1e6 / work as f64),
            "rss_bytes": self.rss_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(300.0));
        assert_eq!(cpu_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn status_lines_in_kib() {
        let status = "Name:\traccoon\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_reads() {
        let a = sample(Pid::Own).unwrap();
        assert!(a.rss_bytes > 0 && a.peak_rss_bytes >= a.rss_bytes);
        let b = sample(Pid::Own).unwrap();
        let usage = Usage::between(&a, &b);
        assert!(usage.cpu_seconds >= 0.0 && usage.cpu_percent >= 0.0);
        assert!(sample(Pid::Other(u32::MAX)).is_err());
    }
}
