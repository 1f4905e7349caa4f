//! The accept loop of one listener (a shard's, or the Prometheus exporter's).
//!
//! glommio 0.9.0 adds a waker clone to a pending `accept()` on every poll, and its task
//! reference count (an `i16`) overflows after about 32,767 polls: the executor panics with
//! "Waker invariant broken". Racing `accept()` against a timer in a `select` triggers it in
//! minutes on an idle server. So the accept loop runs as a task of its own that nothing but the
//! listener wakes, and it is stopped by cancelling the task, never by racing it.

use std::net::TcpListener as StdTcpListener;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};

/// Pause after an accept error (for example EMFILE) before accepting again, so a persistent
/// error does not spin the shard.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Moves a listening socket bound by the main thread into the current executor's reactor.
#[allow(unsafe_code)]
pub fn adopt(listener: StdTcpListener) -> TcpListener {
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` comes from `into_raw_fd` on a bound, listening TCP socket, so it is open,
    // of the right kind, and owned by nobody else from here on.
    unsafe { TcpListener::from_raw_fd(fd) }
}

/// Accepts connections forever, handing each to `on_accept`. Stop it by cancelling its task.
pub async fn accept_loop(listener: TcpListener, mut on_accept: impl FnMut(TcpStream)) {
    let mut last_error_logged: Option<std::time::Instant> = None;
    loop {
        match listener.accept().await {
            Ok(stream) => on_accept(stream),
            Err(error) => {
                // At most one line per second: a full fd table produces an error per attempt.
                if last_error_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %error, "accept failed");
                    last_error_logged = Some(std::time::Instant::now());
                }
                glommio::timer::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};
    use std::cell::Cell;
    use std::rc::Rc;

    /// Polls of a pending accept that overflow glommio 0.9.0's waker count.
    const OVERFLOWING_POLLS: u32 = 32_767;

    /// Keeps the shard busy with far more wake-ups than would overflow a re-polled accept,
    /// then checks the idle listener still accepts. If the accept loop were ever raced against a
    /// timer again, this test would panic inside glommio.
    #[test]
    fn idle_listener_survives_more_wakeups_than_the_waker_count_holds() {
        let std_listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let accepted = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(512 << 10)
            .spawn(move || async move {
                let count = Rc::new(Cell::new(0u32));
                let seen = Rc::clone(&count);
                let task = glommio::spawn_local(accept_loop(adopt(std_listener), move |_stream| {
                    seen.set(seen.get() + 1);
                }))
                .detach();
                // A busy neighbour: each iteration is a timer wake-up on this executor.
                for _ in 0..OVERFLOWING_POLLS + 5_000 {
                    glommio::timer::sleep(Duration::from_micros(1)).await;
                }
                let client = std::thread::spawn(move || std::net::TcpStream::connect(addr).map(drop));
                for _ in 0..500 {
                    if count.get() > 0 {
                        break;
                    }
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                task.cancel();
                client.join().unwrap().unwrap();
                count.get()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(accepted, 1);
    }
}
