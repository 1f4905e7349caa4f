//! The gRPC client: unary `raystack.raccoon.v1beta1.EventService/SendEvent` calls over one
//! HTTP/2 connection (tonic's channel, which reconnects by itself), protobuf only.

use std::sync::Arc;

use http::uri::PathAndQuery;
use prost::Message as _;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use crate::event::Batch;
use crate::options::{common_builder_methods, Options};
use crate::pb;
use crate::retry::with_retries;
use crate::stats::StatsSnapshot;
use crate::wire::Response;
use crate::Error;

/// The method every batch calls.
pub const SEND_EVENT_PATH: &str = "/raystack.raccoon.v1beta1.EventService/SendEvent";

/// A gRPC client. Cheap to clone: clones share the HTTP/2 connection (calls multiplex on it)
/// and the stats; a load generator wanting several connections builds several clients.
///
/// Lives on: any tokio runtime.
#[derive(Clone, Debug)]
pub struct GrpcClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: String,
    channel: Channel,
    metadata: MetadataMap,
    opts: Options,
}

/// Builds a [`GrpcClient`].
#[derive(Debug)]
pub struct GrpcBuilder {
    url: String,
    opts: Options,
}

impl GrpcBuilder {
    common_builder_methods!();

    /// The client; it connects on its first call (and again whenever the connection is lost).
    /// Must be called within a tokio runtime.
    pub fn build(self) -> Result<GrpcClient, Error> {
        let opts = self.opts.finish()?;
        let secure = self.url.starts_with("https://");
        if !secure && !self.url.starts_with("http://") {
            return Err(Error::Config(format!("URL {:?}: expected http:// or https://", self.url)));
        }
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(opts.connect_timeout));
        connector.enforce_http(false);
        let connector = crate::rest::https_connector(&opts, secure, crate::rest::HttpVersion::Http2, connector)?;
        let endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| Error::Config(format!("URL {:?}: {e}", self.url)))?
            .user_agent(crate::USER_AGENT)
            .map_err(|e| Error::Config(e.to_string()))?
            .connect_timeout(opts.connect_timeout)
            .tcp_nodelay(true);
        let mut headers = opts.headers.clone();
        headers.remove(http::header::USER_AGENT);
        let metadata = MetadataMap::from_headers(headers);
        Ok(GrpcClient {
            inner: Arc::new(Inner {
                addr: self.url,
                channel: endpoint.connect_with_connector_lazy(connector),
                metadata,
                opts,
            }),
        })
    }
}

impl GrpcClient {
    /// A builder for a client of the gRPC port at `url`, e.g. `http://127.0.0.1:8081`.
    pub fn builder(url: &str) -> GrpcBuilder {
        GrpcBuilder { url: url.to_owned(), opts: Options::default() }
    }

    /// Sends one batch and waits for its reply: the `req_guid` and the successful reply, or the
    /// error (an error reply is [`Error::Reply`], a gRPC status other than `OK` is
    /// [`Error::Grpc`]). Retries as the policy says.
    pub async fn send(&self, batch: impl Into<Batch>) -> Result<(String, Response), Error> {
        let batch = batch.into();
        let message = crate::wire::request(&batch);
        let response =
            with_retries(&self.inner.opts, batch.req_guid(), |retry| self.attempt(message.clone(), retry > 0)).await?;
        Ok((batch.req_guid().to_owned(), response))
    }

    /// What this client and its clones did so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.opts.stats.snapshot()
    }

    async fn attempt(&self, message: pb::SendEventRequest, retry: bool) -> Result<Response, Error> {
        let inner = &*self.inner;
        let grpc_error = |status: tonic::Status| {
            if status.code() == tonic::Code::Unavailable {
                inner.opts.stats.conn_error();
            }
            Error::Grpc { code: status.code(), message: status.message().to_owned() }
        };
        inner.opts.stats.wrote(message.encoded_len(), retry);
        let call = async {
            let mut grpc = tonic::client::Grpc::new(inner.channel.clone());
            grpc.ready().await.map_err(|e| {
                inner.opts.stats.conn_error();
                Error::Connect { addr: inner.addr.clone(), reason: e.to_string() }
            })?;
            let mut request = tonic::Request::new(message);
            *request.metadata_mut() = inner.metadata.clone();
            request.set_timeout(inner.opts.timeout);
            let codec = tonic_prost::ProstCodec::<pb::SendEventRequest, pb::SendEventResponse>::default();
            let reply =
                grpc.unary(request, PathAndQuery::from_static(SEND_EVENT_PATH), codec).await.map_err(grpc_error)?;
            let reply = reply.into_inner();
            inner.opts.stats.received(reply.encoded_len());
            Ok(Response::from(reply))
        };
        tokio::time::timeout(inner.opts.timeout, call)
            .await
            .unwrap_or(Err(Error::Timeout { addr: inner.addr.clone(), timeout: inner.opts.timeout }))
    }
}
