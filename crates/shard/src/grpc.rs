//! The gRPC transport: unary `EventService/SendEvent` (current and legacy package paths) on
//! `SERVER_GRPC_PORT`, served by hyper's HTTP/2 server on the shard (cleartext, prior
//! knowledge, as Raccoon's plain `grpc.NewServer()`), its streams spawned as shard tasks.
//!
//! Outcomes, as Raccoon's handler (spec 1.6): a published batch gets the usual
//! [`SendEventResponse`](raccoon_protocol::pb::SendEventResponse) with `grpc-status: 0`, and so
//! does one Kafka failed for good, with `EVENT_ACK=1` (a missing topic: `CODE_INTERNAL_ERROR`; a
//! rejected event: `CODE_BAD_REQUEST`; the reason says why, where Raccoon left it empty). A
//! batch Kafka could not take now ends with `UNAVAILABLE` and the reason, so that gRPC clients'
//! retry policies resend it ([`raccoon_protocol::refusal`]);
//! a call without the connection id metadata ends with `UNKNOWN` "connection id header
//! missing"; a body that is not a [`SendEventRequest`](raccoon_protocol::pb::SendEventRequest) with `INTERNAL`. Added: a message over
//! `SERVER_GRPC_MAX_MESSAGE_BYTES` ends with `RESOURCE_EXHAUSTED` before it is buffered, a
//! compressed one with `UNIMPLEMENTED`, a call whose `grpc-timeout` passes before the outcome is
//! known with `DEADLINE_EXCEEDED`, and calls during shutdown with `UNAVAILABLE`.
//!
//! Lives on: owning shard.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::net::TcpStream;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::secure::{secure, Port};
use crate::shard::Shard;
use crate::submit::{publish_request, record_refused};
use raccoon_core::handoff::Origin;
use raccoon_metrics::{tags, MetricId};
use raccoon_protocol::batch::{decode_batch, BatchError};
use raccoon_protocol::grpc::{self, FrameError, GrpcCode, PREFIX_BYTES};
use raccoon_protocol::refusal;
use raccoon_protocol::reply::{unix_now_secs, Reply};
use raccoon_rt::{Activity, HyperIo};

/// Raccoon's error for a call without the id metadata (a plain Go error: status UNKNOWN).
const MISSING_ID: &str = "connection id header missing";

pub(super) async fn serve(shard: Rc<Shard>, tcp: TcpStream) {
    let _open = shard.http_opened();
    let Some(stream) = secure(&shard, tcp, Port::Grpc).await else { return };
    let peer = stream.peer_addr().ok().map(raccoon_rt::listen::canonical);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shard.config().server.write_wait));
    let activity = Rc::new(Activity::default());
    let io = HyperIo::new(stream, Rc::clone(&activity), shard.grpc_deadlines());
    let service = {
        let shard = Rc::clone(&shard);
        hyper::service::service_fn(move |request| {
            let active = activity.begin();
            let shard = Rc::clone(&shard);
            async move {
                let response = handle(&shard, request).await;
                drop(active);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut connection = shard.http2().serve_connection(io, service);
    // At shutdown: GOAWAY, then the connection ends once its calls are answered.
    let served = shard.drive_connection(&mut connection, |c| c.graceful_shutdown(), |c, cx| Pin::new(c).poll(cx)).await;
    match served {
        Some(Ok(())) => {}
        Some(Err(error)) => tracing::debug!(?peer, %error, "gRPC connection ended"),
        None => tracing::debug!(?peer, "gRPC connection dropped at shutdown"),
    }
}

async fn handle(shard: &Rc<Shard>, request: Request<Incoming>) -> Response<GrpcBody> {
    let received_at = Instant::now();
    let path = request.uri().path();
    if !grpc::SEND_EVENT_PATHS.contains(&path) {
        return status(GrpcCode::Unimplemented, &grpc::unknown_method_message(path));
    }
    if request.method() != Method::POST {
        return http_error(StatusCode::METHOD_NOT_ALLOWED);
    }
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !is_grpc {
        return http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let server = &shard.config().server;
    let named = server.identity.from_headers(request.headers());
    let Some(conn_id) = named.id else {
        return status(GrpcCode::Unknown, MISSING_ID);
    };
    let group_name = named.group;
    if shard.draining() {
        return status(GrpcCode::Unavailable, "the server is shutting down");
    }
    let deadline = request
        .headers()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc::parse_timeout)
        .map(|timeout| received_at + timeout);
    let group = shard.metrics().borrow_mut().client_tag(&group_name);
    let body_limit =
        deadline.map_or(server.body_timeout, |d| d.saturating_duration_since(Instant::now()).min(server.body_timeout));
    let message = match read_message(request.into_body(), server.grpc_max_message_bytes, body_limit).await {
        Ok(message) => message,
        Err(ReadError::Frame(error)) => {
            record_refused(shard, group, shard.tags().serde);
            return status(error.code(), &error.to_string());
        }
        Err(ReadError::Timeout) => {
            record_refused(shard, group, shard.tags().read_error);
            return status(GrpcCode::DeadlineExceeded, "request message not received in time");
        }
        Err(ReadError::Read(error)) => {
            record_refused(shard, group, shard.tags().read_error);
            return status(GrpcCode::Internal, &format!("grpc: cannot read the request: {error}"));
        }
    };
    let decoded = match decode_batch(message, &shard.config().topic_pattern) {
        Ok(decoded) => decoded,
        Err(error @ BatchError::InvalidType { .. }) => {
            record_refused(shard, group, shard.tags().serde);
            return reply(&Reply::bad_request(error.req_guid().to_owned(), error.to_string()));
        }
        Err(error) => {
            record_refused(shard, group, shard.tags().serde);
            // grpc-go's words, with the decoder's error.
            let detail = match error {
                BatchError::Malformed(error) => error.to_string(),
                other => other.to_string(),
            };
            return status(GrpcCode::Internal, &format!("grpc: error unmarshalling request: {detail}"));
        }
    };
    let origin = Arc::new(Origin { conn_id: conn_id.into(), group: group_name.into() });
    let publish = publish_request(shard, group, origin, decoded, received_at);
    let answer = match deadline {
        None => publish.await,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            match glommio::timer::timeout(left, async { Ok(publish.await) }).await {
                Ok(outcome) => outcome,
                Err(_) => return status(GrpcCode::DeadlineExceeded, "the batch's outcome was not known in time"),
            }
        }
    };
    shard.metrics().borrow_mut().record(MetricId::EventRtt, tags([]), received_at.elapsed());
    match answer.refusal.and_then(refusal::grpc_status) {
        Some(code) => status(code, &answer.reply.reason),
        None => reply(&answer.reply),
    }
}

/// Why no request message could be read.
enum ReadError {
    Frame(FrameError),
    Timeout,
    Read(hyper::Error),
}

/// Reads the one message of a unary call; an oversized or compressed one is refused as soon as
/// its prefix is in.
async fn read_message(mut body: Incoming, max: usize, limit: Duration) -> Result<Bytes, ReadError> {
    let read = async {
        let mut buf = BytesMut::new();
        let mut checked = false;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(ReadError::Read)?.into_data() else { continue };
            buf.extend_from_slice(&data);
            if !checked && buf.len() >= PREFIX_BYTES {
                grpc::check_prefix(&buf, max).map_err(ReadError::Frame)?;
                checked = true;
            }
            if buf.len() > PREFIX_BYTES + max {
                return Err(ReadError::Frame(FrameError::Trailing { extra: buf.len() - PREFIX_BYTES - max }));
            }
        }
        grpc::decode_unary(buf.freeze(), max).map_err(ReadError::Frame)
    };
    match glommio::timer::timeout(limit, async { Ok(read.await) }).await {
        Ok(result) => result,
        Err(_) => Err(ReadError::Timeout),
    }
}

/// A call that completed: the reply, then `grpc-status: 0`.
fn reply(reply: &Reply) -> Response<GrpcBody> {
    let message = grpc::encode_message(&reply.encode_proto(unix_now_secs()));
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(GrpcCode::Ok.as_header()));
    let mut response = Response::new(GrpcBody { message: Some(message), trailers: Some(trailers) });
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// A call that ended without a reply ("trailers-only": the status in the headers).
fn status(code: GrpcCode, message: &str) -> Response<GrpcBody> {
    let mut response = Response::new(GrpcBody { message: None, trailers: None });
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static(code.as_header()));
    if let Ok(value) = HeaderValue::from_str(&grpc::encode_grpc_message(message)) {
        headers.insert("grpc-message", value);
    }
    response
}

/// Not a gRPC request at all: a plain HTTP status.
fn http_error(code: StatusCode) -> Response<GrpcBody> {
    let mut response = Response::new(GrpcBody { message: None, trailers: None });
    *response.status_mut() = code;
    response
}

/// A unary response body: at most one message, then the trailers.
///
/// Lives on: owning shard.
pub(crate) struct GrpcBody {
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(message) = this.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}
