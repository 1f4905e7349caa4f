//! Names no earlier run used (topics, consumer groups, temporary files) and ports free right now.

use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

/// `prefix-<pid>-<nanoseconds>`: unique per run, so topics start empty even on a broker that
/// keeps its data.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A port nobody listens on right now on 127.0.0.1, for a server that must come back on the
/// same port or a client that must find nobody.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports (the listeners are held until all are chosen).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> =
        (0..N).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("a bound address").port())
}
