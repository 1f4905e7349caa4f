//! TLS on a listener: the certificate files of a port and the rustls configuration built from
//! them, reloadable while the server runs ([`config`]), and one connection's encrypted stream
//! over a glommio socket ([`stream`]).
//!
//! Where it sits: between the socket and everything that reads it. A shard accepts a TCP
//! connection, [`accept`] runs the handshake, and the transports (hyper for HTTP/1 and HTTP/2,
//! the WebSocket reader and writer) read and write a [`Stream`](crate::Stream) that is plain TCP
//! or TLS; none of them knows which. The codecs never see TLS.
//!
//! Why rustls' unbuffered API rather than its buffered connection (which `futures-rustls`
//! wraps): the buffered connection keeps a 4 KiB receive buffer for its whole life, so an idle
//! connection costs about 6.3 KiB in rustls alone; with the unbuffered API the caller owns every
//! buffer, and here each thread decrypts and encrypts in one scratch buffer of its own
//! ([`TlsScratch`]), so an idle connection holds only rustls' state, about 2.2 KiB
//! (perf-results/2026-12-03-tls.md). A connection keeps bytes of its own only while a record is
//! cut across reads or the socket pushes back on a write.
//!
//! Lives on: the executor that owns the connection (!Send); the configuration is shared by all.

pub mod config;
mod stream;

pub use config::{ClientAuth, ServerTls, TlsError, TlsSource};
pub use stream::{accept, HandshakeError, TlsScratch, TlsStream};
