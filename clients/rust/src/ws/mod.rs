//! The WebSocket client: one long-lived connection to `/api/v1/events`, many batches in flight
//! on it, replies matched by `req_guid`.
//!
//! [`WsClient::send`] returns once the batch is written (or, while reconnecting, kept to be
//! written); its outcome arrives later, as an [`Ack`] on the stream from
//! [`WsClient::subscribe`] and, for [`WsClient::send_and_wait`], to the waiting caller.
//!
//! - **Ack stream, drop policy.** The stream is bounded (its capacity is the subscriber's
//!   choice). The connection never waits for its reader: an ack that finds the buffer full is
//!   dropped and counted ([`StatsSnapshot::acks_dropped`]); a waiting [`send_and_wait`] still gets
//!   its outcome. Without a subscriber, acks are not kept. One subscriber at a time: subscribing
//!   again ends the earlier stream.
//! - **Pings.** The client pings every [`ping_interval`] (default 10 s) and answers the server's
//!   pings, so the server's pong-wait rule never drops it.
//! - **Reconnects and retries.** When the connection is lost, the client reconnects with the
//!   retry policy's backoff, up to [`reconnect_attempts`] times (default 10), and writes again every
//!   batch still unanswered, with its `req_guid`, while its retries last (then it fails with
//!   [`Error::Transport`]). A reply with `CODE_INTERNAL_ERROR` (3) is retried the same way after
//!   a backoff. A batch with no reply within [`timeout`] on a live connection fails with
//!   [`Error::Timeout`] and is not sent again (the server may still be working on it).
//! - **Refusals.** Codes 4 (connection limit) and 5 (duplicate user id) and close 1008 end the
//!   client: every unanswered batch, and every later `send`, fails with [`Error::Rejected`].
//! - **Close.** [`WsClient::close`] (or dropping every clone) waits, up to `timeout`, for the
//!   replies of batches in flight, then closes with 1000.
//!
//! [`send_and_wait`]: WsClient::send_and_wait
//! [`ping_interval`]: WsBuilder::ping_interval
//! [`reconnect_attempts`]: WsBuilder::reconnect_attempts
//! [`timeout`]: WsBuilder::timeout

mod conn;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tungstenite::Message;

use crate::event::Batch;
use crate::options::{common_builder_methods, Options};
use crate::stats::{Stats, StatsSnapshot};
use crate::wire::{self, Encoding, Response};
use crate::Error;

/// The outcome of one batch sent over a WebSocket.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The batch's `req_guid`.
    pub req_guid: String,
    /// The successful reply, or why the batch failed.
    pub result: Result<Response, Error>,
    /// From the batch's first write to its outcome.
    pub latency: Duration,
}

/// The acks of one [`WsClient`] (and its clones), bounded; see the module docs for what is
/// dropped when nobody reads. Also a `futures` `Stream`.
#[derive(Debug)]
pub struct AckStream {
    rx: mpsc::Receiver<Ack>,
}

impl AckStream {
    /// The next ack; `None` once the client ended or another subscriber replaced this one.
    pub async fn recv(&mut self) -> Option<Ack> {
        self.rx.recv().await
    }

    /// The next ack if one is buffered.
    pub fn try_recv(&mut self) -> Option<Ack> {
        self.rx.try_recv().ok()
    }
}

impl futures_util::Stream for AckStream {
    type Item = Ack;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Ack>> {
        self.rx.poll_recv(cx)
    }
}

/// A WebSocket client: a handle to one connection, served by a task of its own. Cheap to clone:
/// clones share the connection, its acks and stats. A load generator opens one client per
/// connection.
///
/// Lives on: the tokio runtime that called [`WsBuilder::connect`] (its connection task).
#[derive(Clone, Debug)]
pub struct WsClient {
    shared: Arc<Shared>,
    cmds: mpsc::Sender<Cmd>,
}

/// What the handles and the connection task share.
#[derive(Debug)]
struct Shared {
    addr: String,
    encoding: Encoding,
    stats: Stats,
    acks: Mutex<Option<mpsc::Sender<Ack>>>,
    /// Why the client ended, once it has.
    ended: Mutex<Option<Error>>,
}

impl Shared {
    fn ended(&self) -> Option<Error> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn closed_error(&self) -> Error {
        self.ended().unwrap_or_else(|| Error::Closed(format!("the connection to {} has ended", self.addr)))
    }
}

/// A request from a handle to the connection task.
#[derive(Debug)]
enum Cmd {
    Send {
        req_guid: String,
        frame: Message,
        queued: Instant,
        waiter: Option<oneshot::Sender<Result<Response, Error>>>,
        accepted: oneshot::Sender<Result<(), Error>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// The connection settings the task reconnects with.
#[derive(Debug, Clone)]
struct Config {
    url: String,
    opts: Options,
    /// For `wss://` URLs.
    tls: Option<Arc<rustls::ClientConfig>>,
    ping_interval: Duration,
    reconnect_attempts: u32,
    local_address: Option<IpAddr>,
}

/// Builds a [`WsClient`].
#[derive(Debug)]
pub struct WsBuilder {
    url: String,
    encoding: Encoding,
    opts: Options,
    ping_interval: Duration,
    reconnect_attempts: u32,
    local_address: Option<IpAddr>,
    queue: usize,
}

impl WsBuilder {
    common_builder_methods!();

    /// Frames: binary protobuf (default, [`Encoding::Proto`]) or text JSON.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// How often the client pings the server (default 10 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Reconnection attempts after a lost connection, paced by the retry policy's backoff
    /// (default 10; 0 never reconnects).
    pub fn reconnect_attempts(mut self, attempts: u32) -> Self {
        self.reconnect_attempts = attempts;
        self
    }

    /// The local address to connect from (e.g. one of several 127.x addresses, to use more than
    /// one address's ephemeral ports).
    pub fn local_address(mut self, ip: IpAddr) -> Self {
        self.local_address = Some(ip);
        self
    }

    /// How many `send`s may wait for the connection task (default 64); more wait in `send`.
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// Connects (TCP and the upgrade; fails with [`Error::Connect`]) and starts the connection's
    /// task. A refusal (codes 4 and 5) comes after the upgrade and ends the client then: see the
    /// module docs.
    pub async fn connect(self) -> Result<WsClient, Error> {
        let mut url = self.url.clone();
        let Some(scheme) = ["ws://", "wss://"].into_iter().find(|scheme| url.starts_with(scheme)) else {
            return Err(Error::Config(format!("URL {url:?}: expected ws:// or wss://")));
        };
        if !url[scheme.len()..].contains('/') {
            url.push_str(crate::rest::EVENTS_PATH);
        }
        let opts = self.opts.finish()?;
        // Built once per client: every reconnection reuses it (and its session tickets).
        let tls = if scheme == "wss://" { Some(opts.tls.client_config(&[b"http/1.1"])?) } else { None };
        let config = Config {
            url,
            opts,
            tls,
            ping_interval: self.ping_interval,
            reconnect_attempts: self.reconnect_attempts,
            local_address: self.local_address,
        };
        let stats = config.opts.stats.clone();
        let ws = conn::connect(&config).await.inspect_err(|_| stats.conn_error())?;
        let shared = Arc::new(Shared {
            addr: config.url.clone(),
            encoding: self.encoding,
            stats,
            acks: Mutex::new(None),
            ended: Mutex::new(None),
        });
        let (cmds, rx) = mpsc::channel(self.queue);
        tokio::spawn(conn::Conn::new(config, Arc::clone(&shared), rx).run(ws));
        Ok(WsClient { shared, cmds })
    }
}

impl WsClient {
    /// A builder for a client of `url`, e.g. `ws://127.0.0.1:8080` (the path defaults to
    /// `/api/v1/events`).
    pub fn builder(url: &str) -> WsBuilder {
        WsBuilder {
            url: url.to_owned(),
            encoding: Encoding::default(),
            opts: Options::default(),
            ping_interval: Duration::from_secs(10),
            reconnect_attempts: 10,
            local_address: None,
            queue: 64,
        }
    }

    /// Sends one batch; returns its `req_guid` once it is written. Its outcome goes to the ack
    /// stream. Fails when the client has ended, or when a batch with the same `req_guid` is
    /// still unanswered on this connection.
    pub async fn send(&self, batch: impl Into<Batch>) -> Result<String, Error> {
        self.submit(batch.into(), None).await
    }

    /// Sends one batch and waits for its outcome (it also goes to the ack stream).
    pub async fn send_and_wait(&self, batch: impl Into<Batch>) -> Result<(String, Response), Error> {
        let (tx, rx) = oneshot::channel();
        let req_guid = self.submit(batch.into(), Some(tx)).await?;
        let response = rx.await.unwrap_or_else(|_| Err(self.shared.closed_error()))?;
        Ok((req_guid, response))
    }

    /// A stream of every later batch's [`Ack`], buffering up to `capacity` (at least 1). Ends
    /// the stream of an earlier subscriber.
    pub fn subscribe(&self, capacity: usize) -> AckStream {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        *self.shared.acks.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        AckStream { rx }
    }

    /// What this client and its clones did so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Why the client ended, if it has (refused, closed, or out of reconnection attempts).
    pub fn ended(&self) -> Option<Error> {
        self.shared.ended()
    }

    /// Waits (up to the timeout) for the replies of batches in flight, then closes the
    /// connection with 1000, for this handle and every clone.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Close { done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn submit(
        &self,
        batch: Batch,
        waiter: Option<oneshot::Sender<Result<Response, Error>>>,
    ) -> Result<String, Error> {
        if let Some(e) = self.shared.ended() {
            return Err(e);
        }
        let queued = Instant::now();
        let bytes = wire::encode(&batch, self.shared.encoding);
        let frame = match self.shared.encoding {
            Encoding::Proto => Message::Binary(bytes),
            Encoding::Json => Message::Text(
                tungstenite::Utf8Bytes::try_from(bytes).map_err(|e| Error::Config(format!("JSON frame: {e}")))?,
            ),
        };
        let (accepted, rx) = oneshot::channel();
        let req_guid = batch.req_guid().to_owned();
        let cmd = Cmd::Send { req_guid: req_guid.clone(), frame, queued, waiter, accepted };
        self.cmds.send(cmd).await.map_err(|_| self.shared.closed_error())?;
        rx.await.unwrap_or_else(|_| Err(self.shared.closed_error()))?;
        Ok(req_guid)
    }
}
