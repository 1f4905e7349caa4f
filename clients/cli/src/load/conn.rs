//! One `load` connection: opens its client, then keeps batches in flight (closed loop) or sends
//! on a schedule (open loop) until told to stop, collects the replies still owed (bounded) and
//! closes.
//!
//! Latency is measured here, not taken from the library: in a closed loop from the `send` call,
//! in an open loop from the batch's *intended* send time, so a stalled server shows as latency
//! instead of as fewer samples (no coordinated omission).
//!
//! Lives on: its own tokio task on the run's runtime.

use crate::tls::{with_tls, TlsArgs};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use raccoon_client::{AckStream, Batch, Error, Event, GrpcClient, Response, RestClient, RetryPolicy, WsClient};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use super::recorder::Recorder;
use crate::send::{EncodingArg, Transport};

/// How a connection paces its batches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// Keep this many batches in flight.
    Closed { in_flight: usize },
    /// One batch every `interval`, the first at `offset` after the start, with at most
    /// `max_in_flight` unanswered (the rest wait, their latency counting from their intended time).
    Open { interval: Duration, offset: Duration, max_in_flight: usize },
}

impl Pace {
    fn cap(self) -> usize {
        match self {
            Pace::Closed { in_flight } => in_flight,
            Pace::Open { max_in_flight, .. } => max_in_flight,
        }
    }
}

/// What every connection of a run shares.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) url: String,
    pub(crate) transport: Transport,
    pub(crate) encoding: EncodingArg,
    pub(crate) pace: Pace,
    pub(crate) events: Arc<Vec<Event>>,
    pub(crate) timeout: Duration,
    pub(crate) tls: TlsArgs,
}

/// A batch's outcome, from whichever transport.
struct Done {
    req_guid: String,
    result: Result<Response, Error>,
}

/// An open client and where its outcomes arrive.
enum Client {
    Ws(WsClient, AckStream),
    /// REST and gRPC: each send runs in a task of its own and reports to the channel.
    Unary(Unary, mpsc::UnboundedSender<Done>, mpsc::UnboundedReceiver<Done>),
}

#[derive(Clone)]
enum Unary {
    Rest(RestClient),
    Grpc(GrpcClient),
}

impl Client {
    async fn open(plan: &Plan, index: usize, local: IpAddr) -> Result<Client, Error> {
        let timeout = plan.timeout;
        let user = format!("load-{}-{index}", std::process::id());
        let unary = |u: Unary| {
            let (tx, rx) = mpsc::unbounded_channel();
            Client::Unary(u, tx, rx)
        };
        Ok(match plan.transport {
            Transport::Ws => {
                let client = with_tls!(WsClient::builder(&plan.url), &plan.tls)
                    .encoding(plan.encoding.encoding())
                    .user_id(&user)
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .retry(RetryPolicy::none())
                    .reconnect_attempts(0)
                    .local_address(local)
                    .queue(plan.pace.cap().max(1))
                    .connect()
                    .await?;
                // Room for every ack in flight: the stream never drops one we wait for.
                let acks = client.subscribe(plan.pace.cap() * 2 + 16);
                Client::Ws(client, acks)
            }
            Transport::Rest => unary(Unary::Rest(
                with_tls!(RestClient::builder(&plan.url), &plan.tls)
                    .encoding(plan.encoding.encoding())
                    .user_id(&user)
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .retry(RetryPolicy::none())
                    .build()?,
            )),
            Transport::Grpc => unary(Unary::Grpc(
                with_tls!(GrpcClient::builder(&plan.url), &plan.tls)
                    .user_id(&user)
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .retry(RetryPolicy::none())
                    .build()?,
            )),
        })
    }

    /// Hands `batch` to the transport; an error here means the client is unusable.
    async fn send(&self, batch: Batch) -> Result<(), Error> {
        match self {
            Client::Ws(ws, _) => ws.send(batch).await.map(drop),
            Client::Unary(unary, tx, _) => {
                let (unary, tx) = (unary.clone(), tx.clone());
                let req_guid = batch.req_guid().to_owned();
                tokio::spawn(async move {
                    let result = match unary {
                        Unary::Rest(c) => c.send(batch).await,
                        Unary::Grpc(c) => c.send(batch).await,
                    };
                    let _ = tx.send(Done { req_guid, result: result.map(|(_, r)| r) });
                });
                Ok(())
            }
        }
    }

    /// The next outcome; `None` once no more can come.
    async fn next(&mut self) -> Option<Done> {
        match self {
            Client::Ws(_, acks) => acks.recv().await.map(|a| Done { req_guid: a.req_guid, result: a.result }),
            Client::Unary(_, _, rx) => rx.recv().await,
        }
    }

    async fn close(self) {
        if let Client::Ws(ws, _) = self {
            ws.close().await;
        }
    }
}

/// Runs connection `index`: connects from `local`, reports the outcome on `connected`, waits for
/// `go`, drives batches until `stop`, then drains for at most the timeout (plus a second).
pub(crate) async fn run(
    plan: Arc<Plan>,
    index: usize,
    local: IpAddr,
    recorder: Arc<Recorder>,
    connected: mpsc::Sender<bool>,
    mut go: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut client = match Client::open(&plan, index, local).await {
        Ok(c) => c,
        Err(e) => {
            recorder.error(format!("connect: {}", super::recorder::error_kind(&e)));
            let _ = connected.send(false).await;
            return;
        }
    };
    recorder.connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = connected.send(true).await;
    drop(connected);
    if go.wait_for(|g| *g).await.is_err() {
        client.close().await;
        return;
    }
    let started = Instant::now();
    let cap = plan.pace.cap();
    let batch_events = plan.events.len();
    let mut pending: HashMap<String, Instant> = HashMap::with_capacity(cap * 2);
    let mut seq = 0u64;
    let mut next_at = match plan.pace {
        Pace::Open { offset, .. } => started + offset,
        Pace::Closed { .. } => started,
    };
    let mut drain_until: Option<Instant> = None;
    'run: loop {
        if drain_until.is_none() {
            loop {
                let now = Instant::now();
                let intended = match plan.pace {
                    Pace::Closed { in_flight } if pending.len() < in_flight => now,
                    Pace::Open { interval, .. } if next_at <= now && pending.len() < cap => {
                        let at = next_at;
                        next_at += interval;
                        at
                    }
                    _ => break,
                };
                let req_guid = format!("{}-{index}-{seq}", std::process::id());
                seq += 1;
                let batch = Batch::new(plan.events.iter().cloned()).with_req_guid(req_guid.clone());
                pending.insert(req_guid, intended);
                recorder.sent(batch_events);
                if let Err(e) = client.send(batch).await {
                    recorder.unanswered(pending.len(), &format!("send: {}", super::recorder::error_kind(&e)));
                    pending.clear();
                    break 'run;
                }
            }
        } else if pending.is_empty() {
            break;
        }
        let open_wait = matches!(plan.pace, Pace::Open { .. }) && drain_until.is_none() && pending.len() < cap;
        tokio::select! {
            done = client.next() => {
                let Some(done) = done else {
                    let why = client_end(&client);
                    recorder.unanswered(pending.len(), &why);
                    pending.clear();
                    break;
                };
                let Some(intended) = pending.remove(&done.req_guid) else { continue };
                match done.result {
                    Ok(_) => recorder.acked(batch_events, intended.elapsed()),
                    Err(e) => recorder.failed(&e),
                }
            }
            _ = sleep_until(next_at), if open_wait => {}
            _ = stop.wait_for(|s| *s), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + plan.timeout + Duration::from_secs(1));
            }
            _ = sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {
                recorder.unanswered(pending.len(), "unanswered at stop");
                pending.clear();
                break;
            }
        }
    }
    recorder.connected.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    client.close().await;
}

/// Why a client's outcomes stopped.
fn client_end(client: &Client) -> String {
    match client {
        Client::Ws(ws, _) => match ws.ended() {
            Some(e) => format!("connection ended: {}", super::recorder::error_kind(&e)),
            None => "connection ended".to_owned(),
        },
        Client::Unary(..) => "client ended".to_owned(),
    }
}
