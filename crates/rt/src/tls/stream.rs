//! One TLS connection over a glommio socket, on rustls' unbuffered API: the handshake
//! ([`accept`]), then reads that decrypt in the thread's scratch buffer and hand the plaintext
//! to the caller ([`TlsStream::poll_read_with`], or [`AsyncRead`]), and writes that encrypt in
//! the thread's other scratch buffer and send at once ([`AsyncWrite`]).
//!
//! What a connection keeps between polls, besides rustls' state: ciphertext of a record a read
//! cut in two (`incoming`), ciphertext the socket did not take yet (`outgoing`), and plaintext
//! past what an [`AsyncRead`] caller's buffer took (`plain`). Each is empty, and unallocated,
//! on an idle connection.
//!
//! Lives on: the executor that owns the socket (!Send).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_lite::future::poll_fn;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;
use thiserror::Error;

/// Largest TLS record on the wire: 16 KiB of plaintext and the most expansion TLS allows.
const MAX_RECORD_BYTES: usize = 16 * 1024 + 2048 + 5;
/// The read scratch: a handshake message rustls accepts (at most 64 KiB, joined across
/// records) carried over, and one record more.
const READ_SCRATCH_BYTES: usize = 64 * 1024 + MAX_RECORD_BYTES;
/// Plaintext one write encrypts (four full records).
const WRITE_PLAINTEXT_BYTES: usize = 64 * 1024;
/// The write scratch: that plaintext and its records' expansion (at most 29 bytes each).
const WRITE_SCRATCH_BYTES: usize = WRITE_PLAINTEXT_BYTES + 1024;
/// Content type of a TLS handshake record: what the first byte of a client's first flight is.
const HANDSHAKE_RECORD: u8 = 22;

/// What a plain HTTP request sent to a TLS port is answered with.
const CLEARTEXT_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 50\r\nConnection: close\r\n\r\nThis port takes TLS only: use https:// or wss://.\n";

/// The buffers one thread's TLS connections decrypt and encrypt in, one connection at a time
/// (each borrow lasts one poll).
///
/// Lives on: one executor (!Send), shared by its connections.
pub struct TlsScratch {
    read: RefCell<Box<[u8]>>,
    write: RefCell<Box<[u8]>>,
}

impl TlsScratch {
    /// The scratch buffers of one executor (about 148 KiB).
    pub fn new() -> Rc<Self> {
        Rc::new(TlsScratch {
            read: RefCell::new(vec![0; READ_SCRATCH_BYTES].into_boxed_slice()),
            write: RefCell::new(vec![0; WRITE_SCRATCH_BYTES].into_boxed_slice()),
        })
    }
}

/// Why a TLS handshake failed; [`HandshakeError::reason`] is the metric tag.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The client spoke something else than TLS (a plain HTTP request is answered with a 400
    /// saying to use TLS).
    #[error("the client did not start a TLS handshake")]
    Cleartext,
    /// The client closed the connection before the handshake completed.
    #[error("the client closed the connection during the TLS handshake")]
    Closed,
    /// The handshake did not complete within its deadline.
    #[error("the TLS handshake did not complete in time")]
    Timeout,
    /// rustls refused what the client sent (no shared version or cipher suite, a bad or missing
    /// client certificate, a malformed message).
    #[error("TLS handshake failed: {0}")]
    Tls(rustls::Error),
    /// The socket failed.
    #[error("TLS handshake failed: {0}")]
    Io(io::Error),
}

impl HandshakeError {
    /// A bounded name for metrics: `cleartext`, `closed`, `timeout`, `certificate` (the client's
    /// certificate was missing or refused), `alert` (the client gave up with an alert, for
    /// example because it does not trust the server's certificate), `protocol` or `io`.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Cleartext => "cleartext",
            HandshakeError::Closed => "closed",
            HandshakeError::Timeout => "timeout",
            HandshakeError::Tls(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
                "certificate"
            }
            HandshakeError::Tls(rustls::Error::AlertReceived(_)) => "alert",
            HandshakeError::Tls(_) => "protocol",
            HandshakeError::Io(_) => "io",
        }
    }
}

/// Runs the server side of a TLS handshake on `tcp` with `config`, within `deadline`.
///
/// A client whose first byte does not start a TLS record is refused at once (a plain HTTP
/// request gets a 400 naming the fix), before rustls allocates anything for it.
pub async fn accept(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    scratch: Rc<TlsScratch>,
    deadline: Duration,
) -> Result<TlsStream, HandshakeError> {
    let handshake = async move {
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(_) if first[0] == HANDSHAKE_RECORD => {}
            Ok(_) => {
                let mut tcp = tcp;
                if first[0].is_ascii_uppercase() {
                    let _ = tcp.write_all(CLEARTEXT_ANSWER).await;
                    let _ = tcp.close().await;
                }
                return Err(HandshakeError::Cleartext);
            }
            Err(error) => return Err(HandshakeError::Io(error.into())),
        }
        let conn = UnbufferedServerConnection::new(config).map_err(HandshakeError::Tls)?;
        let mut stream = TlsStream {
            io: TlsIo {
                tcp,
                conn,
                scratch,
                incoming: Vec::new(),
                outgoing: Vec::new(),
                sent: 0,
                eof: false,
                close_notify_sent: false,
            },
            plain: Vec::new(),
            plain_at: 0,
        };
        loop {
            poll_fn(|cx| stream.io.poll_send_outgoing(cx)).await.map_err(HandshakeError::Io)?;
            if !stream.io.conn.is_handshaking() {
                return Ok(stream);
            }
            if stream.io.eof {
                return Err(HandshakeError::Closed);
            }
            // What a client sends right after its last handshake message (its first request,
            // often in the same segment) is kept for the first read.
            let plain = &mut stream.plain;
            let read = poll_fn(|cx| stream.io.poll_read_once(cx, &mut |bytes| plain.extend_from_slice(bytes))).await;
            if let Err(error) = read {
                return Err(match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                    Some(tls) => HandshakeError::Tls(tls.clone()),
                    None if error.kind() == io::ErrorKind::UnexpectedEof => HandshakeError::Closed,
                    None => HandshakeError::Io(error),
                });
            }
        }
    };
    let timeout = async {
        glommio::timer::sleep(deadline).await;
        Err(HandshakeError::Timeout)
    };
    futures_lite::future::or(handshake, timeout).await
}

/// An established TLS connection.
///
/// Lives on: the executor that owns the socket (!Send).
pub struct TlsStream {
    io: TlsIo,
    /// Plaintext decrypted past what an [`AsyncRead`] caller's buffer took.
    plain: Vec<u8>,
    plain_at: usize,
}

/// The socket and rustls' state: everything but the plaintext a reader has not taken.
struct TlsIo {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    scratch: Rc<TlsScratch>,
    /// Ciphertext read but not processed yet: a record cut across reads.
    incoming: Vec<u8>,
    /// Ciphertext the socket has not taken yet, from `sent` on.
    outgoing: Vec<u8>,
    sent: usize,
    /// The client sent its close_notify, or closed the socket.
    eof: bool,
    close_notify_sent: bool,
}

impl TlsStream {
    /// The socket under the encryption.
    pub fn tcp(&self) -> &TcpStream {
        &self.io.tcp
    }

    /// Certificates the client presented (mTLS), leaf first.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.io.conn.peer_certificates()
    }

    /// Waits for the client's next bytes and hands their plaintext to `on_plain` (in one or more
    /// calls, straight from the scratch buffer). Returns how many plaintext bytes it handed
    /// over; 0 when the client closed its side.
    pub fn poll_read_with(&mut self, cx: &mut Context<'_>, on_plain: &mut dyn FnMut(&[u8])) -> Poll<io::Result<usize>> {
        if self.plain_at < self.plain.len() {
            let n = self.plain.len() - self.plain_at;
            on_plain(&self.plain[self.plain_at..]);
            self.plain = Vec::new();
            self.plain_at = 0;
            return Poll::Ready(Ok(n));
        }
        self.io.poll_fill(cx, on_plain)
    }
}

impl TlsIo {
    /// Reads until some plaintext arrived or the client closed; returns the plaintext bytes.
    fn poll_fill(&mut self, cx: &mut Context<'_>, on_plain: &mut dyn FnMut(&[u8])) -> Poll<io::Result<usize>> {
        loop {
            let delivered = ready!(self.poll_read_once(cx, on_plain))?;
            if delivered > 0 || self.eof {
                return Poll::Ready(Ok(delivered));
            }
        }
    }

    /// One read from the socket, processed: handshake and alert records answered into
    /// `outgoing` (and sent if the socket takes them now), application data to `on_plain`.
    /// Returns the plaintext bytes handed over.
    fn poll_read_once(&mut self, cx: &mut Context<'_>, on_plain: &mut dyn FnMut(&[u8])) -> Poll<io::Result<usize>> {
        // What the handshake or a key update made us send goes first. A socket that pushes back
        // does not stop reading: it wakes this task when it takes more.
        if let Poll::Ready(Err(error)) = self.poll_send_outgoing(cx) {
            return Poll::Ready(Err(error));
        }
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        let scratch = Rc::clone(&self.scratch);
        let mut scratch = scratch.read.borrow_mut();
        let carried = self.incoming.len();
        if carried >= scratch.len() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "TLS message too large")));
        }
        scratch[..carried].copy_from_slice(&self.incoming);
        let n = ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut scratch[carried..]))?;
        if n == 0 {
            self.eof = true;
            if carried > 0 || self.conn.is_handshaking() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection in the middle of a TLS record",
                )));
            }
            return Poll::Ready(Ok(0));
        }
        let total = carried + n;
        let mut delivered = 0;
        let processed = process(&mut self.conn, &mut scratch[..total], &mut self.outgoing, &mut |plain| {
            delivered += plain.len();
            on_plain(plain);
        });
        let (consumed, peer_closed) = match processed {
            Ok(done) => done,
            Err(error) => return Poll::Ready(Err(self.fail(cx, error))),
        };
        self.incoming.clear();
        self.incoming.extend_from_slice(&scratch[consumed..total]);
        if self.incoming.is_empty() {
            // An idle connection holds no buffer.
            self.incoming = Vec::new();
        }
        drop(scratch);
        self.eof |= peer_closed;
        if let Poll::Ready(Err(error)) = self.poll_send_outgoing(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(delivered))
    }

    /// A protocol error: the alert rustls queued for it is sent if the socket takes it now, and
    /// the error returned (rustls' error inside an [`io::Error`]).
    fn fail(&mut self, cx: &mut Context<'_>, error: rustls::Error) -> io::Error {
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut alert)) = state {
            if encode_into(&mut alert, &mut self.outgoing).is_ok() {
                let _ = self.poll_send_outgoing(cx);
            }
        }
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    /// Sends what is in `outgoing`; ready once all of it was taken (the buffer is then freed).
    fn poll_send_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            match ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.sent..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.sent += n,
            }
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Encrypts `plain` into `out`, answering first whatever rustls must send before it.
    fn encrypt(&mut self, plain: &[u8], out: &mut [u8]) -> io::Result<usize> {
        loop {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
            match state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
                ConnectionState::WriteTraffic(mut traffic) => {
                    return traffic.encrypt(plain, out).map_err(encrypt_error);
                }
                ConnectionState::EncodeTlsData(mut encode) => encode_into(&mut encode, &mut self.outgoing)?,
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::PeerClosed => self.eof = true,
                ConnectionState::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
                // Every record read is handed over as it is read, so none waits here; and the
                // stream exists only once the handshake is done.
                _ => return Err(io::Error::other("TLS connection in an unexpected state")),
            }
        }
    }

    /// Writes the ciphertext in `out` to the socket, keeping what it does not take now.
    fn send(&mut self, cx: &mut Context<'_>, out: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        if self.outgoing.is_empty() {
            while sent < out.len() {
                match Pin::new(&mut self.tcp).poll_write(cx, &out[sent..]) {
                    Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => sent += n,
                    Poll::Ready(Err(error)) => return Err(error),
                    Poll::Pending => break,
                }
            }
        }
        // Behind earlier ciphertext, or not taken yet: in order, after it.
        self.outgoing.extend_from_slice(&out[sent..]);
        Ok(())
    }
}

/// Runs `conn` over the ciphertext in `buf`: handshake messages answered into `outgoing`,
/// application data handed to `on_plain`. Returns how many bytes at the front of `buf` are
/// done with (the rest is a record not complete yet), and whether the client sent close_notify.
fn process(
    conn: &mut UnbufferedServerConnection,
    buf: &mut [u8],
    outgoing: &mut Vec<u8>,
    on_plain: &mut dyn FnMut(&[u8]),
) -> Result<(usize, bool), rustls::Error> {
    let mut consumed = 0;
    let mut peer_closed = false;
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process_tls_records(&mut buf[consumed..]);
        match state? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record?;
                    discard += record.discard;
                    on_plain(record.payload);
                }
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(&mut encode, outgoing).map_err(|e| rustls::Error::General(e.to_string()))?;
            }
            // `outgoing` goes out before anything written after it.
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            ConnectionState::PeerClosed => peer_closed = true,
            ConnectionState::Closed => {
                return Ok((consumed + discard, true));
            }
            // Needs more bytes: the handshake's next message, or the next record.
            ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => {
                return Ok((consumed + discard, peer_closed));
            }
            // Early data is never enabled.
            _ => return Err(rustls::Error::General("unexpected TLS state".into())),
        }
        consumed += discard;
    }
}

/// Appends a handshake or alert record to `outgoing`.
fn encode_into<Data>(encode: &mut EncodeTlsData<'_, Data>, outgoing: &mut Vec<u8>) -> io::Result<()> {
    let required = match encode.encode(&mut []) {
        Err(EncodeError::InsufficientSize(size)) => size.required_size,
        Ok(_) => return Ok(()),
        Err(error) => return Err(io::Error::other(error.to_string())),
    };
    let at = outgoing.len();
    outgoing.resize(at + required, 0);
    let written = encode.encode(&mut outgoing[at..]).map_err(|error| io::Error::other(error.to_string()))?;
    outgoing.truncate(at + written);
    Ok(())
}

fn encrypt_error(error: EncryptError) -> io::Error {
    io::Error::other(error.to_string())
}

impl AsyncRead for TlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.plain_at < this.plain.len() {
            let n = (this.plain.len() - this.plain_at).min(out.len());
            out[..n].copy_from_slice(&this.plain[this.plain_at..this.plain_at + n]);
            this.plain_at += n;
            if this.plain_at == this.plain.len() {
                this.plain = Vec::new();
                this.plain_at = 0;
            }
            return Poll::Ready(Ok(n));
        }
        let mut filled = 0;
        let plain = &mut this.plain;
        let n = ready!(this.io.poll_fill(cx, &mut |bytes| {
            let take = bytes.len().min(out.len() - filled);
            out[filled..filled + take].copy_from_slice(&bytes[..take]);
            filled += take;
            plain.extend_from_slice(&bytes[take..]);
        }))?;
        debug_assert!(filled <= n);
        Poll::Ready(Ok(filled))
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let io = &mut self.get_mut().io;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // At most one write's ciphertext waits for the socket: the next waits for it.
        ready!(io.poll_send_outgoing(cx))?;
        let take = data.len().min(WRITE_PLAINTEXT_BYTES);
        let scratch = Rc::clone(&io.scratch);
        let mut scratch = scratch.write.borrow_mut();
        let n = io.encrypt(&data[..take], &mut scratch)?;
        io.send(cx, &scratch[..n])?;
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = &mut self.get_mut().io;
        ready!(io.poll_send_outgoing(cx))?;
        Pin::new(&mut io.tcp).poll_flush(cx)
    }

    /// Sends close_notify, then ends the socket's sending side.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = &mut self.get_mut().io;
        if !io.close_notify_sent {
            io.close_notify_sent = true;
            let UnbufferedStatus { state, .. } = io.conn.process_tls_records(&mut []);
            if let Ok(ConnectionState::WriteTraffic(mut traffic)) = state {
                let mut alert = [0u8; 64];
                if let Ok(n) = traffic.queue_close_notify(&mut alert) {
                    io.outgoing.extend_from_slice(&alert[..n]);
                }
            }
        }
        ready!(io.poll_send_outgoing(cx))?;
        Pin::new(&mut io.tcp).poll_close(cx)
    }
}

#[cfg(test)]
mod tests;
