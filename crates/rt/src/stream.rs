//! An accepted connection as every transport reads and writes it: plain TCP, or TLS over TCP
//! ([`crate::tls`]). hyper (through [`HyperIo`](crate::HyperIo)) and the WebSocket reader and
//! writer take a [`Stream`] and never ask which it is.
//!
//! An enum rather than a type parameter: the transports are compiled once, and the branch per
//! read or write is predicted perfectly on a port that is all one or all the other. The TLS state
//! is boxed so that a plain connection pays one pointer for it.
//!
//! Lives on: the executor that owns the socket (!Send).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

use crate::tls::TlsStream;

/// One accepted connection.
pub enum Stream {
    /// Cleartext.
    Plain(TcpStream),
    /// TLS, handshake done.
    Tls(Box<TlsStream>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.tcp(),
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr().map_err(Into::into)
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp().set_nodelay(on).map_err(Into::into)
    }

    /// How long a write may wait for the socket (`None`: forever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(timeout).map_err(Into::into)
    }

    /// How long a read may wait for the socket (`None`: forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout).map_err(Into::into)
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Waits for the client's next bytes and hands them to `on_read` without a copy of the
    /// connection's own: a plain socket reads into `buffer` (the caller's shared one), TLS
    /// decrypts in its thread's scratch and ignores `buffer`. Returns how many bytes were handed
    /// over; 0 when the client closed its side.
    pub fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        buffer: &mut [u8],
        on_read: &mut dyn FnMut(&[u8]),
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Plain(tcp) => {
                let n = ready!(Pin::new(tcp).poll_read(cx, buffer))?;
                on_read(&buffer[..n]);
                Poll::Ready(Ok(n))
            }
            Stream::Tls(tls) => tls.poll_read_with(cx, on_read),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_close(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_close(cx),
        }
    }
}
