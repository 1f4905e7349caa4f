//! The connection task of a [`WsClient`](super::WsClient): writes batches and pings, reads
//! replies and routes them by `req_guid`, reconnects and writes unanswered batches again.
//!
//! Lives on: a tokio task of its own per connection; it ends when the client is closed, refused,
//! dropped, or out of reconnection attempts.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::tokio::ClientStream;
use async_tungstenite::WebSocketStream;
use futures_util::StreamExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use super::{Ack, Cmd, Config, Shared};
use crate::wire::{self, Response};
use crate::{Code, Error};

pub(super) type Ws = WebSocketStream<ClientStream<TcpStream>>;

/// Opens the TCP connection (from the configured local address, if any), runs the TLS handshake
/// for a `wss://` URL, and upgrades it.
pub(super) async fn connect(config: &Config) -> Result<Ws, Error> {
    let fail = |reason: String| Error::Connect { addr: config.url.clone(), reason };
    let mut request = config.url.as_str().into_client_request().map_err(|e| fail(e.to_string()))?;
    request.headers_mut().extend(config.opts.headers.clone());
    let authority = request.uri().authority().map(|a| a.to_string()).ok_or_else(|| fail("no host".into()))?;
    let default_port = if config.tls.is_some() { 443 } else { 80 };
    let authority = if authority.contains(':') { authority } else { format!("{authority}:{default_port}") };
    let connecting = async {
        let addr: SocketAddr = tokio::net::lookup_host(&authority)
            .await
            .map_err(|e| fail(e.to_string()))?
            .next()
            .ok_or_else(|| fail(format!("{authority} resolves to no address")))?;
        let socket =
            if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| fail(e.to_string()))?;
        if let Some(ip) = config.local_address {
            socket.bind(SocketAddr::new(ip, 0)).map_err(|e| fail(format!("bind {ip}: {e}")))?;
        }
        let stream = socket.connect(addr).await.map_err(|e| fail(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
        let connector = config.tls.clone().map(tokio_rustls::TlsConnector::from);
        let (ws, _) = async_tungstenite::tokio::client_async_tls_with_connector(request, stream, connector)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(ws)
    };
    tokio::time::timeout(config.opts.connect_timeout, connecting)
        .await
        .unwrap_or_else(|_| Err(fail(format!("no connection within {:?}", config.opts.connect_timeout))))
}

/// A batch written and not yet answered.
struct Pending {
    frame: Message,
    seq: u64,
    /// Attempts after the first.
    retries: u32,
    first_sent: Instant,
    last_sent: Instant,
    /// Whether the current connection has it (false while it waits to be written again).
    on_wire: bool,
    waiter: Option<oneshot::Sender<Result<Response, Error>>>,
}

/// Why a connection ended.
enum Ended {
    /// The client closed (or every handle was dropped).
    Closed,
    /// The server refused the client; terminal.
    Rejected(Error),
    /// The connection broke; reconnect.
    Lost(String),
}

pub(super) struct Conn {
    config: Config,
    shared: Arc<Shared>,
    cmds: mpsc::Receiver<Cmd>,
    pending: HashMap<String, Pending>,
    /// Batches waiting for a retry after a retryable reply, by due time and sequence.
    retry_at: BTreeMap<(Instant, u64), String>,
    seq: u64,
    /// Set once the client is closing: when to give up waiting, and who waits for it.
    closing: Option<(Instant, Vec<oneshot::Sender<()>>)>,
}

impl Conn {
    pub(super) fn new(config: Config, shared: Arc<Shared>, cmds: mpsc::Receiver<Cmd>) -> Conn {
        Conn { config, shared, cmds, pending: HashMap::new(), retry_at: BTreeMap::new(), seq: 0, closing: None }
    }

    pub(super) async fn run(mut self, mut ws: Ws) {
        let end = loop {
            match self.serve(&mut ws).await {
                Ended::Closed => break Error::Closed("closed by the client".into()),
                Ended::Rejected(e) => break e,
                Ended::Lost(reason) => {
                    tracing::debug!(url = %self.config.url, %reason, "connection lost");
                    self.shared.stats.conn_error();
                    let lost = Error::Transport { addr: self.config.url.clone(), reason: reason.clone() };
                    self.give_up_exhausted(&lost);
                    if self.closing.is_some() {
                        break lost;
                    }
                    match self.reconnect().await {
                        Some(new) => ws = new,
                        None => {
                            break Error::Closed(format!(
                                "lost the connection to {} ({reason}) and {} reconnection attempts failed",
                                self.config.url, self.config.reconnect_attempts
                            ))
                        }
                    }
                }
            }
        };
        *self.shared.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(end.clone());
        for (guid, p) in std::mem::take(&mut self.pending) {
            self.finish(guid, p, Err(end.clone()));
        }
        self.cmds.close();
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                Cmd::Send { accepted, .. } => {
                    let _ = accepted.send(Err(end.clone()));
                }
                Cmd::Close { done } => {
                    let _ = done.send(());
                }
            }
        }
        if let Some((_, waiters)) = self.closing.take() {
            for w in waiters {
                let _ = w.send(());
            }
        }
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, ws: &mut Ws) -> Ended {
        let timeout = self.config.opts.timeout;
        // After a reconnect: write again what the lost connection had.
        let mut again: Vec<_> =
            self.pending.iter().filter(|(_, p)| !p.on_wire).map(|(g, p)| (p.seq, g.clone())).collect();
        again.sort();
        for (_, guid) in again {
            if self.retry_at.values().any(|g| *g == guid) {
                continue;
            }
            if let Err(reason) = self.write_pending(ws, &guid, true).await {
                return self.lost_after_write(ws, reason).await;
            }
        }
        let start = tokio::time::Instant::now();
        let mut ping = tokio::time::interval_at(start + self.config.ping_interval, self.config.ping_interval);
        let sweep_every = timeout.min(Duration::from_secs(1));
        let mut sweep = tokio::time::interval_at(start + sweep_every, sweep_every);
        loop {
            if let Some((deadline, _)) = &self.closing {
                if self.pending.is_empty() || Instant::now() >= *deadline {
                    let _ = tokio::time::timeout(timeout, ws.close(None)).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} })
                        .await;
                    return Ended::Closed;
                }
            }
            let next_retry = self.retry_at.first_key_value().map(|((t, _), _)| *t);
            tokio::select! {
                cmd = self.cmds.recv(), if self.closing.is_none() => match cmd {
                    None => self.closing = Some((Instant::now() + timeout, Vec::new())),
                    Some(Cmd::Close { done }) => self.closing = Some((Instant::now() + timeout, vec![done])),
                    Some(Cmd::Send { req_guid, frame, queued, waiter, accepted }) => {
                        if self.pending.contains_key(&req_guid) {
                            let why = format!("a batch with req_guid {req_guid:?} is still unanswered on this connection");
                            let _ = accepted.send(Err(Error::Config(why)));
                            continue;
                        }
                        self.seq += 1;
                        let now = Instant::now();
                        let len = frame_len(&frame);
                        let p = Pending { frame, seq: self.seq, retries: 0, first_sent: now, last_sent: now, on_wire: true, waiter };
                        self.pending.insert(req_guid.clone(), p);
                        self.shared.stats.wrote(len, false);
                        let written = self.write(ws, &req_guid).await;
                        self.shared.stats.sent_in(queued.elapsed());
                        let _ = accepted.send(Ok(()));
                        if let Err(reason) = written {
                            return self.lost_after_write(ws, reason).await;
                        }
                    }
                },
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        self.shared.stats.received(b.len());
                        if let Some(end) = self.on_reply(wire::decode_proto(&b)) {
                            return end;
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        self.shared.stats.received(t.len());
                        if let Some(end) = self.on_reply(wire::decode_json(t.as_bytes())) {
                            return end;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => return self.on_close(frame),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    None => return Ended::Lost("the connection closed".into()),
                },
                _ = ping.tick() => {
                    let ping = Message::Ping(bytes::Bytes::from_static(b"raccoon-client"));
                    match tokio::time::timeout(timeout, ws.send(ping)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return self.lost_after_write(ws, e.to_string()).await,
                        Err(_) => return Ended::Lost(format!("a ping was not written within {timeout:?}")),
                    }
                }
                _ = sweep.tick() => self.expire(),
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now).into()), if next_retry.is_some() => {
                    let now = Instant::now();
                    while let Some(entry) = self.retry_at.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        let guid = entry.remove();
                        if self.pending.contains_key(&guid) {
                            if let Err(reason) = self.write_pending(ws, &guid, true).await {
                                return self.lost_after_write(ws, reason).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes a pending batch again (a retry).
    async fn write_pending(&mut self, ws: &mut Ws, guid: &str, retry: bool) -> Result<(), String> {
        let Some(p) = self.pending.get_mut(guid) else { return Ok(()) };
        if retry {
            p.retries += 1;
            p.last_sent = Instant::now();
        }
        p.on_wire = true;
        let len = frame_len(&p.frame);
        self.shared.stats.wrote(len, retry);
        tracing::debug!(req_guid = guid, retry, "writing batch");
        self.write(ws, guid).await
    }

    async fn write(&mut self, ws: &mut Ws, guid: &str) -> Result<(), String> {
        let Some(p) = self.pending.get(guid) else { return Ok(()) };
        let timeout = self.config.opts.timeout;
        match tokio::time::timeout(timeout, ws.send(p.frame.clone())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("a frame was not written within {timeout:?}")),
        }
    }

    /// A write failed: read what the server still sent (a refusal explains the failure), then
    /// call the connection lost.
    async fn lost_after_write(&mut self, ws: &mut Ws, reason: String) -> Ended {
        let drain = async {
            while let Some(Ok(msg)) = ws.next().await {
                let reply = match msg {
                    Message::Binary(b) => wire::decode_proto(&b),
                    Message::Text(t) => wire::decode_json(t.as_bytes()),
                    Message::Close(frame) => return Some(self.on_close(frame)),
                    _ => continue,
                };
                if let Some(end) = self.on_reply(reply) {
                    return Some(end);
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(1), drain).await {
            Ok(Some(end @ Ended::Rejected(_))) => end,
            _ => Ended::Lost(reason),
        }
    }

    fn on_close(&mut self, frame: Option<tungstenite::protocol::CloseFrame>) -> Ended {
        match frame {
            Some(f) if f.code == CloseCode::Policy => {
                Ended::Rejected(Error::Rejected { code: Code::Unspecified, reason: f.reason.to_string() })
            }
            Some(f) => Ended::Lost(format!("the server closed the connection: {} {}", u16::from(f.code), f.reason)),
            None => Ended::Lost("the server closed the connection".into()),
        }
    }

    /// Routes one reply; `Some` when it ends the connection (a refusal).
    fn on_reply(&mut self, reply: Result<Response, String>) -> Option<Ended> {
        let response = match reply {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(url = %self.config.url, %why, "undecodable reply");
                return None;
            }
        };
        let guid = response.req_guid().unwrap_or_default().to_owned();
        if matches!(response.code, Code::MaxConnectionLimitReached | Code::MaxUserLimitReached) && guid.is_empty() {
            return Some(Ended::Rejected(Error::Rejected { code: response.code, reason: response.reason }));
        }
        let Some(mut p) = self.pending.remove(&guid) else {
            tracing::debug!(req_guid = guid, code = ?response.code, "reply for no batch in flight (late, or not ours)");
            return None;
        };
        let result = crate::error::check(&guid, response);
        match result {
            Err(e) if e.is_retryable() && p.retries < self.config.opts.retry.max_retries => {
                let wait = self.config.opts.retry.backoff(p.retries + 1);
                tracing::debug!(req_guid = guid, ?wait, error = %e, "retrying batch");
                p.on_wire = false;
                self.retry_at.insert((Instant::now() + wait, p.seq), guid.clone());
                self.pending.insert(guid, p);
            }
            result => self.finish(guid, p, result),
        }
        None
    }

    /// Fails batches unanswered for longer than the timeout.
    fn expire(&mut self) {
        let timeout = self.config.opts.timeout;
        let now = Instant::now();
        let late: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.on_wire && now.duration_since(p.last_sent) >= timeout)
            .map(|(g, _)| g.clone())
            .collect();
        for guid in late {
            if let Some(p) = self.pending.remove(&guid) {
                self.finish(guid, p, Err(Error::Timeout { addr: self.config.url.clone(), timeout }));
            }
        }
    }

    /// After a lost connection: fails the batches out of retries; the rest wait to be written
    /// again.
    fn give_up_exhausted(&mut self, lost: &Error) {
        let max = self.config.opts.retry.max_retries;
        let spent: Vec<String> =
            self.pending.iter().filter(|(_, p)| p.retries >= max).map(|(g, _)| g.clone()).collect();
        for guid in spent {
            if let Some(p) = self.pending.remove(&guid) {
                self.finish(guid, p, Err(lost.clone()));
            }
        }
        self.pending.values_mut().for_each(|p| p.on_wire = false);
    }

    async fn reconnect(&mut self) -> Option<Ws> {
        for attempt in 1..=self.config.reconnect_attempts {
            tokio::time::sleep(self.config.opts.retry.backoff(attempt)).await;
            match connect(&self.config).await {
                Ok(ws) => {
                    tracing::info!(url = %self.config.url, attempt, "reconnected");
                    self.shared.stats.reconnected();
                    return Some(ws);
                }
                Err(e) => {
                    self.shared.stats.conn_error();
                    tracing::debug!(attempt, error = %e, "reconnection failed");
                }
            }
        }
        None
    }

    /// Delivers a batch's outcome to its waiter and the ack stream.
    fn finish(&self, req_guid: String, p: Pending, result: Result<Response, Error>) {
        let latency = p.first_sent.elapsed();
        self.shared.stats.finished(result.is_ok(), latency);
        // The ack stream first, so a waiter woken below sees the stats of its own ack.
        {
            let mut slot = self.shared.acks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(tx) = slot.as_ref() {
                match tx.try_send(Ack { req_guid, result: result.clone(), latency }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => self.shared.stats.ack_dropped(),
                    Err(mpsc::error::TrySendError::Closed(_)) => *slot = None,
                }
            }
        }
        if let Some(w) = p.waiter {
            let _ = w.send(result);
        }
    }
}

fn frame_len(frame: &Message) -> usize {
    match frame {
        Message::Binary(b) => b.len(),
        Message::Text(t) => t.len(),
        _ => 0,
    }
}
