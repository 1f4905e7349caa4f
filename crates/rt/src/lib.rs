//! The network and the runtime glue: binding the listening sockets ([`listen`], plain std and
//! socket2, done by `main` before any executor starts), accept loops over glommio
//! ([`accept_loop`]), and hyper's runtime traits: the IO adapter, the executor HTTP/2 spawns its
//! streams on, and the connection deadlines hyper cannot keep without a `Send` timer. The shards
//! and the Prometheus exporter use it; it knows neither.
//!
//! hyper 1.x is runtime-agnostic: it drives any IO that implements its own [`rt::Read`] and
//! [`rt::Write`], and it runs `!Send` services and bodies when the executor accepts `!Send`
//! futures. glommio's [`TcpStream`](glommio::net::TcpStream) implements the futures-io traits, so [`HyperIo`] translates
//! between the two (about 60 lines no crate provides for futures-io streams: hyper-util's
//! adapter is for tokio's traits).
//!
//! hyper's own header-read timeout needs an [`rt::Timer`] whose sleeps are `Send + Sync`;
//! glommio's timers are not (they belong to one executor). So the adapter keeps the deadlines
//! itself, with a glommio timer, and fails a pending read with [`TimedOut`](std::io::ErrorKind::TimedOut) when one passes:
//!
//! * **idle**: no request is being served and no byte of the next one has arrived for
//!   `idle` (a keep-alive connection nobody uses, or a client that connects and says nothing);
//! * **head**: the first byte of the next request arrived, but the request did not start (its
//!   head is incomplete) within `head` of it: a half-sent request holds its connection for at
//!   most this long.
//!
//! While a request is being served (the service counts it with [`Activity::begin`]) no read
//! deadline applies: an `EVENT_ACK=1` request may wait for Kafka far longer, and hyper keeps
//! reading meanwhile only to notice the client leave. Body reads have their own deadline in the
//! transports. Write deadlines are the socket's own (`set_write_timeout`).
//!
//! Lives on: owning shard (!Send), or the Prometheus exporter's executor.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use hyper::rt;

pub mod listen;
mod listener;
mod stream;
pub mod tls;

pub use listener::{accept_loop, adopt};
pub use stream::Stream;

/// Most bytes one read asks the socket for.
const MAX_READ_BYTES: usize = 64 * 1024;

/// The read deadlines of one HTTP connection (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Longest wait for the first byte of a request while none is being served.
    pub idle: Duration,
    /// Longest time from the first byte of a request to its head being complete; `None` for
    /// HTTP/2, whose connection-level frames (pings, settings) arrive between requests.
    pub head: Option<Duration>,
}

/// Requests in progress on one connection, shared by its IO adapter and its service.
///
/// Lives on: owning shard (!Send).
#[derive(Debug)]
pub struct Activity {
    active: Cell<u32>,
    /// When the connection last became idle (no request in progress).
    idle_since: Cell<Instant>,
    /// When the first byte arrived after it became idle.
    first_byte: Cell<Option<Instant>>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { active: Cell::new(0), idle_since: Cell::new(Instant::now()), first_byte: Cell::new(None) }
    }
}

impl Activity {
    /// Marks a request as started; the returned guard ends it when dropped (also when hyper
    /// drops the request's future because the client left).
    pub fn begin(self: &Rc<Self>) -> ActiveRequest {
        self.active.set(self.active.get() + 1);
        self.first_byte.set(None);
        ActiveRequest(Rc::clone(self))
    }

    fn deadline(&self, deadlines: &Deadlines) -> Option<Instant> {
        if self.active.get() > 0 {
            return None;
        }
        match (self.first_byte.get(), deadlines.head) {
            (Some(first), Some(head)) => Some(first + head),
            _ => Some(self.idle_since.get() + deadlines.idle),
        }
    }
}

/// One request in progress (see [`Activity::begin`]).
#[derive(Debug)]
pub struct ActiveRequest(Rc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.active.set(activity.active.get().saturating_sub(1));
        if activity.active.get() == 0 {
            activity.idle_since.set(Instant::now());
            activity.first_byte.set(None);
        }
    }
}

/// A futures-io stream as hyper's IO, with the connection's read deadlines.
///
/// Lives on: the executor that owns the stream (!Send).
pub struct HyperIo<T> {
    io: T,
    activity: Rc<Activity>,
    deadlines: Deadlines,
    /// Armed while a read waits under a deadline.
    timer: Option<(Instant, glommio::timer::Timer)>,
    /// Bytes read before hyper took the stream ([`HyperIo::unread`]), given to hyper first.
    unread: Bytes,
}

impl<T> HyperIo<T> {
    /// Wraps `io`; `activity` is the one the connection's service counts requests with.
    pub fn new(io: T, activity: Rc<Activity>, deadlines: Deadlines) -> Self {
        HyperIo { io, activity, deadlines, timer: None, unread: Bytes::new() }
    }

    /// The stream, for a connection that leaves HTTP (a WebSocket upgrade).
    pub fn into_inner(self) -> T {
        self.io
    }

    /// Puts back `bytes` a read took before hyper drives this IO (a first read the connection
    /// looked at itself): hyper's first reads return them before anything from the stream.
    pub fn unread(&mut self, bytes: Bytes) {
        self.unread = bytes;
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(deadline) = self.activity.deadline(&self.deadlines) else {
            self.timer = None;
            return Poll::Pending;
        };
        let now = Instant::now();
        if now >= deadline {
            return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "no complete request in time"));
        }
        match &mut self.timer {
            Some((at, timer)) if *at == deadline => {
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "no complete request in time"));
                }
            }
            slot => {
                let mut timer = glommio::timer::Timer::new(deadline - now);
                // A fresh timer is never ready at once; polling it registers the waker.
                let _ = Pin::new(&mut timer).poll(cx);
                *slot = Some((deadline, timer));
            }
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> HyperIo<T> {
    /// Reads from the stream into `buf` under the connection's deadlines (see the module docs):
    /// the read behind hyper's reads, and the one a connection makes before hyper.
    pub fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 && self.activity.active.get() == 0 && self.activity.first_byte.get().is_none() {
                    self.activity.first_byte.set(Some(Instant::now()));
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.poll_deadline(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> rt::Read for HyperIo<T> {
    #[allow(unsafe_code)]
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, mut buf: rt::ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        // SAFETY: the slice is only written to (zeroed, then filled by the read) before the
        // bytes it holds are reported to hyper with `advance`; nothing uninitialised is read.
        let uninit = unsafe { buf.as_mut() };
        // Bounded, so that zeroing never costs more than one read can bring.
        let len = uninit.len().min(MAX_READ_BYTES);
        let uninit = &mut uninit[..len];
        for byte in uninit.iter_mut() {
            byte.write(0);
        }
        // SAFETY: every element was initialised just above, and `MaybeUninit<u8>` has the
        // layout of `u8`.
        let init: &mut [u8] = unsafe { &mut *(std::ptr::from_mut::<[std::mem::MaybeUninit<u8>]>(uninit) as *mut [u8]) };
        let n = ready!(this.poll_read_into(cx, init))?;
        // SAFETY: the read initialised (and filled) the first `n` bytes of the cursor.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> rt::Write for HyperIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

/// Spawns hyper's HTTP/2 stream futures as tasks of the current glommio executor.
///
/// Lives on: the executor it spawns on.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExec;

impl<F: Future + 'static> rt::Executor<F> for LocalExec {
    fn execute(&self, future: F) {
        glommio::spawn_local(future).detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_follows_activity() {
        let activity = Rc::new(Activity::default());
        let d = Deadlines { idle: Duration::from_secs(60), head: Some(Duration::from_secs(10)) };
        let idle = activity.deadline(&d).unwrap();
        assert_eq!(idle, activity.idle_since.get() + d.idle);
        let first = Instant::now();
        activity.first_byte.set(Some(first));
        assert_eq!(activity.deadline(&d), Some(first + Duration::from_secs(10)));
        let guard = activity.begin();
        assert_eq!(activity.deadline(&d), None, "no read deadline while a request is served");
        let nested = activity.begin();
        drop(guard);
        assert_eq!(activity.deadline(&d), None);
        drop(nested);
        assert!(activity.first_byte.get().is_none());
        assert!(activity.deadline(&d).unwrap() >= idle);
        // HTTP/2: only the idle deadline.
        let h2 = Deadlines { idle: Duration::from_secs(5), head: None };
        activity.first_byte.set(Some(Instant::now()));
        assert_eq!(activity.deadline(&h2), Some(activity.idle_since.get() + Duration::from_secs(5)));
    }
}
