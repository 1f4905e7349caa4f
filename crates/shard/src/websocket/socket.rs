//! The socket of one WebSocket connection, shared by its reader and its writer, and the shard's
//! read buffer that every connection reads through.
//!
//! A read borrows the shard's buffer only for the instant the socket hands over its bytes; they
//! are copied into the connection's [`FrameReader`] before the borrow ends, so a connection waiting
//! for its client holds no buffer at all (see [`raccoon_protocol::websocket`]). glommio's socket
//! keeps separate readiness sources for reading and writing, so the reader and the writer poll
//! the same socket without waiting for each other; the [`RefCell`] is borrowed within one poll only.
//!
//! Lives on: owning shard (!Send).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Poll};

use futures_lite::future::poll_fn;
use futures_lite::AsyncWrite;

use raccoon_protocol::websocket::FrameReader;
use raccoon_rt::Stream;

/// One connection's socket (plain, or TLS: see [`raccoon_rt::tls`]).
pub(super) struct WsSocket {
    stream: RefCell<Stream>,
}

impl WsSocket {
    pub(super) fn new(stream: Stream) -> Self {
        WsSocket { stream: RefCell::new(stream) }
    }

    /// Waits for the client's next bytes and pushes them into `frames`, reading through the
    /// shard's `buffer` (a TLS connection decrypts in the shard's TLS scratch instead, and pushes
    /// the plaintext from there). Returns how many arrived; 0 when the client closed its side.
    pub(super) async fn read(&self, buffer: &RefCell<Box<[u8]>>, frames: &mut FrameReader) -> io::Result<usize> {
        poll_fn(|cx| {
            let mut stream = self.stream.borrow_mut();
            let mut buffer = buffer.borrow_mut();
            stream.poll_read_with(cx, &mut buffer[..], &mut |bytes| frames.push(bytes))
        })
        .await
    }

    /// Writes all of `bytes` and flushes them (TLS sends its last record), within the socket's
    /// write deadline.
    pub(super) async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        let mut written = 0;
        poll_fn(|cx| {
            let mut stream = self.stream.borrow_mut();
            while written < bytes.len() {
                match ready!(Pin::new(&mut *stream).poll_write(cx, &bytes[written..]))? {
                    0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    n => written += n,
                }
            }
            Pin::new(&mut *stream).poll_flush(cx)
        })
        .await
    }

    /// Ends the server's side of the connection (TLS: close_notify; then a FIN after what was
    /// written).
    async fn shutdown(&self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_close(cx)).await
    }

    /// Writes `last` (what ends the connection: a close frame, a refusal) and then ends the
    /// server's side; a failed write leaves the socket to be dropped.
    pub(super) async fn write_last(&self, last: &[u8]) {
        if self.write_all(last).await.is_ok() {
            let _ = self.shutdown().await;
        }
    }
}
