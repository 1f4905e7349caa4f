//! Each port's TLS (`SERVER_TLS_*`, `SERVER_GRPC_TLS_*`, `METRIC_PROMETHEUS_TLS_*`): loaded
//! before anything listens, so that a missing or bad file stops the start with a message naming
//! its key and path; reloaded on SIGHUP, where a bad file keeps the certificate in use and says
//! why.

use std::sync::Arc;

use raccoon_config::TlsPorts;
use raccoon_rt::tls::ServerTls;
use raccoon_shard::ListenerTls;

/// ALPN of the HTTP port: WebSocket upgrades and REST are HTTP/1.1.
const HTTP_ALPN: &[&[u8]] = &[b"http/1.1"];
/// ALPN of the gRPC port.
const GRPC_ALPN: &[&[u8]] = &[b"h2"];

/// Every port's loaded TLS.
pub(crate) struct PortsTls {
    /// The shards' ports.
    pub(crate) listeners: ListenerTls,
    /// The Prometheus port.
    pub(crate) prometheus: Option<Arc<ServerTls>>,
}

impl PortsTls {
    pub(crate) fn load(ports: &TlsPorts) -> anyhow::Result<Self> {
        let load = |source: &Option<raccoon_rt::tls::TlsSource>, alpn| -> anyhow::Result<Option<Arc<ServerTls>>> {
            Ok(match source {
                Some(source) => Some(Arc::new(ServerTls::load(source.clone(), alpn)?)),
                None => None,
            })
        };
        Ok(PortsTls {
            listeners: ListenerTls { http: load(&ports.http, HTTP_ALPN)?, grpc: load(&ports.grpc, GRPC_ALPN)? },
            prometheus: load(&ports.prometheus, HTTP_ALPN)?,
        })
    }

    fn each(&self) -> impl Iterator<Item = (&'static str, &Arc<ServerTls>)> {
        [("http", &self.listeners.http), ("grpc", &self.listeners.grpc), ("prometheus", &self.prometheus)]
            .into_iter()
            .filter_map(|(port, tls)| tls.as_ref().map(|tls| (port, tls)))
    }

    /// Whether any port takes TLS (then SIGHUP reloads instead of stopping).
    pub(crate) fn any(&self) -> bool {
        self.each().next().is_some()
    }

    /// Reads every port's files again; a port whose files fail keeps what it had.
    pub(crate) fn reload(&self) {
        for (port, tls) in self.each() {
            match tls.reload() {
                Ok(()) => tracing::info!(port, cert = %tls.source().cert_file.display(), "TLS certificate reloaded"),
                Err(error) => tracing::error!(port, %error, "TLS reload failed; the port keeps its certificate"),
            }
        }
    }
}
