//! The open-file limit: raised from the soft to the hard limit at start, since every connection
//! is one file descriptor (here the hard limit is 20,000 per process).

/// Descriptors the tool needs besides its connections (stdio, the runtime, Kafka, /proc reads).
pub(crate) const SPARE_FILES: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force, or
/// why it could not be read.
pub(crate) fn raise_open_files() -> Result<u64, String> {
    let (soft, hard) = rlimit::Resource::NOFILE.get().map_err(|e| format!("getrlimit(RLIMIT_NOFILE): {e}"))?;
    if soft < hard {
        if let Err(e) = rlimit::Resource::NOFILE.set(hard, hard) {
            eprintln!("warning: cannot raise the open-file limit from {soft} to {hard}: {e}");
            return Ok(soft);
        }
    }
    Ok(hard.max(soft))
}

/// Raises the limit and warns, plainly, when `connections` will not fit under it.
pub(crate) fn check_connections(connections: usize) -> Option<u64> {
    match raise_open_files() {
        Ok(limit) => {
            if connections as u64 + SPARE_FILES > limit {
                eprintln!(
                    "warning: {connections} connections need about {} open files but this process may open {limit} \
                     (ulimit -n): expect about {} connections to fail; the server has its own limit too",
                    connections as u64 + SPARE_FILES,
                    (connections as u64 + SPARE_FILES).saturating_sub(limit)
                );
            }
            Some(limit)
        }
        Err(why) => {
            eprintln!("warning: {why}");
            None
        }
    }
}
