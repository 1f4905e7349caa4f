//! The REST transport: `POST /api/v1/events` with a [`SendEventRequest`](raccoon_protocol::pb::SendEventRequest) body, protobuf
//! (`Content-Type: application/proto`) or JSON (`application/json`), answered with a
//! [`SendEventResponse`](raccoon_protocol::pb::SendEventResponse) in the same encoding, with the status codes of Raccoon's REST handler
//! (spec 1.6): 200 on success, 400 for a bad content type or body, 500 for a missing topic.
//! Added here: 413 for a body over `SERVER_HTTP_MAX_BODY_BYTES`, 408 for a body that does not
//! arrive within `SERVER_HTTP_BODY_TIMEOUT_MS`, 503 while the server shuts down; and for a batch
//! Kafka did not take, the status of its refusal ([`raccoon_protocol::refusal`]): 503 with
//! `Retry-After` when Kafka is unavailable, 400 when Kafka rejects an event for good.
//!
//! Each refusal's `reason` is Raccoon's text where Raccoon has the case (`invalid content type`,
//! `deserialization failure`, `cannot publish events: ...`); where that text is fixed, what went
//! wrong goes to the `X-Raccoon-Error-Detail` header and the debug log.
//!
//! Identity: the group header names the `conn_group` metric tag; the id is not required and
//! never deduplicated (as Raccoon).
//!
//! Lives on: owning shard.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use super::body::Body;
use crate::shard::Shard;
use crate::submit::{publish_request, record_refused};
use raccoon_core::handoff::{Origin, Refusal};
use raccoon_metrics::{tags, MetricId};
use raccoon_protocol::batch::BatchError;
use raccoon_protocol::pb::Code;
use raccoon_protocol::refusal;
use raccoon_protocol::reply::{unix_now_secs, Reply};
use raccoon_protocol::routing;
use raccoon_protocol::Encoding;

/// Raccoon's reason, exactly, for a body that is not a [`SendEventRequest`](raccoon_protocol::pb::SendEventRequest) (or could not be
/// read); the detail goes to [`routing::ERROR_DETAIL_HEADER`] and the debug log.
const DESERIALIZATION_FAILURE: &str = "deserialization failure";

/// Raccoon's reason for a `Content-Type` that is neither JSON nor protobuf.
const INVALID_CONTENT_TYPE: &str = "invalid content type";

/// Why a request body could not be read.
#[derive(Debug)]
enum BodyError {
    /// More bytes than the limit: at least this many.
    TooLarge(u64),
    /// It did not arrive in time.
    Timeout(Duration),
    /// The connection failed while reading it.
    Read(hyper::Error),
}

pub(super) async fn handle(shard: &Rc<Shard>, request: Request<Incoming>) -> Response<Body> {
    let received_at = Instant::now();
    let server = &shard.config().server;
    let named = server.identity.from_headers(request.headers());
    let group = shard.metrics().borrow_mut().client_tag(&named.group);
    let Some(encoding) = routing::rest_encoding(request.headers()) else {
        record_refused(shard, group, shard.tags().unknown_content_type);
        let given = request.headers().get(header::CONTENT_TYPE);
        let detail = match given.map(HeaderValue::to_str) {
            None => "no Content-Type; send application/json or application/proto".to_owned(),
            Some(Ok(given)) => format!("Content-Type {given:?} is neither application/json nor application/proto"),
            Some(Err(_)) => "Content-Type is not text; send application/json or application/proto".to_owned(),
        };
        tracing::debug!(%detail, "REST request refused");
        let reply = Reply::request_error(Code::BadRequest, INVALID_CONTENT_TYPE.to_owned());
        // The body is always JSON, as Raccoon's: the client's encoding is what is unknown. Its
        // Content-Type echoes the request's, as Raccoon's; with none, it names what the body is
        // (Raccoon sent an empty Content-Type, which names nothing).
        return with_detail(respond(StatusCode::BAD_REQUEST, Encoding::Json, given.cloned(), &reply), &detail);
    };
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    if shard.draining() {
        let reply = Reply::request_error(Code::InternalError, "the server is shutting down".to_owned());
        return respond(StatusCode::SERVICE_UNAVAILABLE, encoding, content_type, &reply);
    }
    let body = match read_body(request.into_body(), server.max_body_bytes, server.body_timeout).await {
        Ok(body) => body,
        Err(error) => {
            record_refused(shard, group, shard.tags().read_error);
            let mut detail = None;
            let (status, code, reason) = match error {
                BodyError::TooLarge(len) => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Code::BadRequest,
                    format!("request body of at least {len} bytes exceeds max_body_bytes {}", server.max_body_bytes),
                ),
                BodyError::Timeout(limit) => (
                    StatusCode::REQUEST_TIMEOUT,
                    Code::BadRequest,
                    format!("request body not received within {} ms", limit.as_millis()),
                ),
                BodyError::Read(error) => {
                    tracing::debug!(%error, "REST body not read");
                    detail = Some(format!("cannot read the request body: {error}"));
                    (StatusCode::INTERNAL_SERVER_ERROR, Code::InternalError, DESERIALIZATION_FAILURE.to_owned())
                }
            };
            let mut response = respond(status, encoding, content_type, &Reply::request_error(code, reason));
            if let Some(detail) = detail {
                response = with_detail(response, &detail);
            }
            // The rest of the body was not read: the connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let decoded = match encoding.decode(body, &shard.config().topic_pattern) {
        Ok(decoded) => decoded,
        Err(error @ BatchError::InvalidType { .. }) => {
            record_refused(shard, group, shard.tags().serde);
            let reply = Reply::bad_request(error.req_guid().to_owned(), error.to_string());
            return respond(StatusCode::BAD_REQUEST, encoding, content_type, &reply);
        }
        Err(error) => {
            record_refused(shard, group, shard.tags().serde);
            tracing::debug!(%error, "REST body refused");
            let reply = Reply::request_error(Code::BadRequest, DESERIALIZATION_FAILURE.to_owned());
            return with_detail(respond(StatusCode::BAD_REQUEST, encoding, content_type, &reply), &error.to_string());
        }
    };
    let origin = Arc::new(Origin { conn_id: named.id.unwrap_or_default().into(), group: named.group.into() });
    let answer = publish_request(shard, group, origin, decoded, received_at).await;
    shard.metrics().borrow_mut().record(MetricId::EventRtt, tags([]), received_at.elapsed());
    let Some(refused) = answer.refusal else {
        return respond(StatusCode::OK, encoding, content_type, &answer.reply);
    };
    let mut response = respond(refusal::http_status(refused), encoding, content_type, &answer.reply);
    if refused == Refusal::Retriable {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(refusal::RETRY_AFTER_SECS));
    }
    response
}

/// Reads the whole body, refusing it as soon as it is known to exceed `max` bytes.
async fn read_body(mut body: Incoming, max: usize, limit: Duration) -> Result<Bytes, BodyError> {
    let max = max as u64;
    if let Some(declared) = body.size_hint().exact().filter(|n| *n > max) {
        return Err(BodyError::TooLarge(declared));
    }
    let read = async {
        let mut first: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else { continue };
            total += data.len() as u64;
            if total > max {
                return Err(BodyError::TooLarge(total));
            }
            // One frame (the usual case) is kept as it is; more are joined.
            match first.take() {
                None if joined.is_empty() => first = Some(data),
                Some(previous) => {
                    joined.extend_from_slice(&previous);
                    joined.extend_from_slice(&data);
                }
                None => joined.extend_from_slice(&data),
            }
        }
        Ok(first.unwrap_or_else(|| joined.freeze()))
    };
    match glommio::timer::timeout(limit, async { Ok(read.await) }).await {
        Ok(result) => result,
        Err(_) => Err(BodyError::Timeout(limit)),
    }
}

/// `response` with `detail` in [`routing::ERROR_DETAIL_HEADER`].
fn with_detail(mut response: Response<Body>, detail: &str) -> Response<Body> {
    response.headers_mut().insert(routing::ERROR_DETAIL_HEADER, routing::error_detail(detail));
    response
}

/// A response carrying `reply` in `encoding`. Its `Content-Type` echoes the request's
/// (as Raccoon's), or names the encoding when the request had none.
fn respond(status: StatusCode, encoding: Encoding, content_type: Option<HeaderValue>, reply: &Reply) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::from(reply.encode(encoding, unix_now_secs()))));
    *response.status_mut() = status;
    let content_type = content_type.unwrap_or_else(|| {
        HeaderValue::from_static(match encoding {
            Encoding::Proto => "application/proto",
            Encoding::Json => "application/json",
        })
    });
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response
}
