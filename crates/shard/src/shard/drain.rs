//! Shutdown on one shard: stop the transports, let connections answer what they hold, wait for
//! them (at most the drain deadline), then drop what is left.
//!
//! Lives on: owning shard (!Send).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use raccoon_core::handoff::ShardMsg;

use super::Shard;

/// At shutdown, how long HTTP and gRPC connections get to close by themselves once no
/// WebSocket and no waiting request is left.
const HTTP_CLOSE_GRACE: Duration = Duration::from_millis(500);

impl Shard {
    /// Drops every HTTP and gRPC connection still open (shutdown, once nothing else is waited for).
    fn abort_http(&self) {
        if !self.aborted.replace(true) {
            self.aborting.notify(usize::MAX);
        }
    }

    /// Counts an HTTP or gRPC connection as open until the returned guard is dropped.
    pub(crate) fn http_opened(self: &Rc<Self>) -> HttpOpen {
        self.http_open.set(self.http_open.get() + 1);
        HttpOpen(Rc::clone(self))
    }

    /// Drives one hyper connection (`poll`) until it ends. Once shutdown begins it is asked to
    /// finish (`graceful`: no more keep-alive, or a GOAWAY); `None` when shutdown stopped waiting
    /// for it and it is dropped (see [`Shard::drain`]). Shared by the HTTP/1 and HTTP/2 connections.
    pub(crate) async fn drive_connection<C: Unpin, T>(
        &self,
        connection: &mut C,
        graceful: impl Fn(Pin<&mut C>),
        mut poll: impl FnMut(&mut C, &mut Context<'_>) -> Poll<T>,
    ) -> Option<T> {
        let mut closing = Some(self.closing.listen());
        let mut aborting = Some(self.aborting.listen());
        futures_lite::future::poll_fn(|cx| {
            if aborting.as_mut().is_some_and(|a| Pin::new(a).poll(cx).is_ready() || self.aborted.get()) {
                return Poll::Ready(None);
            }
            if closing.as_mut().is_some_and(|c| Pin::new(c).poll(cx).is_ready() || self.draining.get()) {
                closing = None;
                graceful(Pin::new(connection));
            }
            poll(connection, cx).map(Some)
        })
        .await
    }

    /// Tells every connection to finish its in-flight batches and close with 1001.
    fn go_away(&self) {
        self.draining.set(true);
        self.closing.notify(usize::MAX);
        for entry in self.conns.borrow_mut().values_mut() {
            entry.sink.go_away();
            if let Some(reader) = entry.reader.take() {
                reader.cancel();
            }
        }
    }

    /// Shutdown, once the inbox said so and the accept loops are stopped: tells every connection
    /// to finish ([`Shard::go_away`]), keeps routing acks while they do, and returns once every
    /// connection and waiting request is gone, or at the drain deadline.
    pub(crate) async fn drain(&self, inbox: &async_channel::Receiver<ShardMsg>) {
        self.go_away();
        let server = &self.config.server;
        let deadline = Instant::now() + server.drain_timeout + server.write_wait + Duration::from_secs(1);
        // An open socket also keeps the executor from ending (its pending read), so HTTP and gRPC
        // connections, told to close by `go_away`, are waited for too; once only they are left, for
        // at most HTTP_CLOSE_GRACE (an idle HTTP/2 client may never answer the GOAWAY's ping).
        let busy = || !self.conns.borrow().is_empty() || !self.requests.borrow().is_empty() || self.http_open.get() > 0;
        let mut only_http_since: Option<Instant> = None;
        while busy() && Instant::now() < deadline {
            // Keep routing acks while connections drain; wake up regularly to notice they are gone.
            let next = glommio::timer::timeout(Duration::from_millis(20), async { Ok(inbox.recv().await.ok()) });
            if let Ok(Some(msg)) = next.await {
                self.route(msg);
            }
            if self.conns.borrow().is_empty() && self.requests.borrow().is_empty() {
                if only_http_since.get_or_insert_with(Instant::now).elapsed() >= HTTP_CLOSE_GRACE {
                    self.abort_http();
                }
            } else {
                only_http_since = None;
            }
        }
        self.abort_http();
        // Dropped connections end at their next poll; give them that.
        for _ in 0..10 {
            if self.http_open.get() == 0 {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        let (left, waiting, http) = (self.conns.borrow().len(), self.requests.borrow().len(), self.http_open.get());
        if left > 0 || waiting > 0 || http > 0 {
            tracing::warn!(
                shard = %self.id,
                connections = left,
                requests = waiting,
                http_connections = http,
                "still open at the drain deadline"
            );
        }
    }
}

/// An open HTTP or gRPC connection (see [`Shard::http_opened`]).
///
/// Lives on: owning shard (!Send).
pub(crate) struct HttpOpen(Rc<Shard>);

impl Drop for HttpOpen {
    fn drop(&mut self) {
        self.0.http_open.set(self.0.http_open.get().saturating_sub(1));
    }
}
