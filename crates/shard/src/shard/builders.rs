//! hyper's server settings for a shard's two ports, and the read deadlines its IO adapter keeps.

use raccoon_rt::{Deadlines, LocalExec};

use super::Shard;
use crate::ServerConfig;

/// hyper's HTTP/1 server settings for the HTTP port.
pub(super) fn http1(server: &ServerConfig) -> hyper::server::conn::http1::Builder {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .keep_alive(true)
        .max_headers(server.http_max_headers)
        .max_header_size(server.http_max_header_bytes)
        .max_buf_size(server.http_max_header_bytes.max(8192))
        // Kept by the IO adapter instead: hyper's needs a Send timer (see raccoon_rt).
        .header_read_timeout(None);
    http1
}

/// hyper's HTTP/2 server settings for the gRPC port.
pub(super) fn http2(server: &ServerConfig) -> hyper::server::conn::http2::Builder<LocalExec> {
    let mut http2 = hyper::server::conn::http2::Builder::new(LocalExec);
    http2
        .max_header_list_size(u32::try_from(server.http_max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(server.grpc_max_concurrent_streams);
    http2
}

impl Shard {
    /// hyper's HTTP/1 server settings for the HTTP port.
    pub(crate) fn http1(&self) -> &hyper::server::conn::http1::Builder {
        &self.http1
    }

    /// hyper's HTTP/2 server settings for the gRPC port.
    pub(crate) fn http2(&self) -> &hyper::server::conn::http2::Builder<LocalExec> {
        &self.http2
    }

    /// Read deadlines of HTTP/1 connections on the HTTP port.
    pub(crate) fn http_deadlines(&self) -> Deadlines {
        let server = &self.config.server;
        Deadlines { idle: server.http_idle_timeout, head: Some(server.http_header_timeout) }
    }

    /// Read deadlines of HTTP/2 connections on the gRPC port.
    pub(crate) fn grpc_deadlines(&self) -> Deadlines {
        Deadlines { idle: self.config.server.http_idle_timeout, head: None }
    }
}
