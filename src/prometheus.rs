//! The Prometheus exporter: [`raccoon_metrics::prometheus::render`] served on
//! `METRIC_PROMETHEUS_PORT` at `METRIC_PROMETHEUS_PATH` by hyper on a small unpinned glommio
//! executor of its own thread, `raccoon-prometheus`. Scrapes stay off the shards (rendering locks
//! the registry), and each scrape connection is a task of its own, so an idle or slow client
//! delays no other scrape.

use std::convert::Infallible;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use raccoon_metrics::prometheus::{render, CONTENT_TYPE};
use raccoon_metrics::Registry;
use raccoon_rt::tls::{ServerTls, TlsScratch};
use raccoon_rt::{accept_loop, adopt, Activity, Deadlines, HyperIo, Stream};

/// How long a scraper may take to send its request, and to read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle keep-alive scrape connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// glommio io memory of the exporter's executor: it does no file I/O.
const IO_MEMORY_BYTES: usize = 64 << 10;

/// Serves scrapes until the process exits, on a glommio executor of the calling thread, over
/// TLS when `tls` is set (`METRIC_PROMETHEUS_TLS_*`). Errors on one connection only end that
/// connection.
pub(crate) fn serve(listener: TcpListener, path: String, registry: Arc<Registry>, tls: Option<Arc<ServerTls>>) {
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).io_memory(IO_MEMORY_BYTES).make();
    let executor = match executor {
        Ok(executor) => executor,
        Err(error) => {
            tracing::error!(%error, "cannot start the Prometheus exporter; metrics are not served");
            return;
        }
    };
    executor.run(async move {
        let path: Rc<str> = Rc::from(path);
        let scratch = tls.is_some().then(TlsScratch::new);
        accept_loop(adopt(listener), move |tcp| {
            let (path, registry) = (Rc::clone(&path), Arc::clone(&registry));
            let tls = tls.as_ref().zip(scratch.as_ref()).map(|(tls, scratch)| (tls.config(), Rc::clone(scratch)));
            glommio::spawn_local(async move {
                let stream = match tls {
                    None => Stream::Plain(tcp),
                    Some((config, scratch)) => {
                        match raccoon_rt::tls::accept(tcp, config, scratch, REQUEST_TIMEOUT).await {
                            Ok(tls) => Stream::Tls(Box::new(tls)),
                            Err(error) => {
                                tracing::debug!(%error, "metrics connection: TLS handshake failed");
                                return;
                            }
                        }
                    }
                };
                let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
                let activity = Rc::new(Activity::default());
                let deadlines = Deadlines { idle: IDLE_TIMEOUT, head: Some(REQUEST_TIMEOUT) };
                let io = HyperIo::new(stream, Rc::clone(&activity), deadlines);
                let service = hyper::service::service_fn(move |request| {
                    let _active = activity.begin();
                    std::future::ready(Ok::<_, Infallible>(answer(&request, &path, &registry)))
                });
                if let Err(error) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                    tracing::debug!(%error, "metrics connection ended");
                }
            })
            .detach();
        })
        .await;
    });
}

fn answer<B>(request: &Request<B>, path: &str, registry: &Arc<Registry>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if request.uri().path() != path {
        (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", Bytes::from_static(b"not found"))
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", Bytes::from_static(b"use GET"))
    } else {
        (StatusCode::OK, CONTENT_TYPE, Bytes::from(render(registry)))
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}
