//! Raccoon's shards: one glommio executor per configured CPU, pinned to it. Each has its own
//! `SO_REUSEPORT` listeners on the HTTP and gRPC ports (the kernel spreads connections across
//! them), owns every connection it accepts, decodes batches in place and offers them to the
//! publishers through [`raccoon_core`]'s handoff. Delivery outcomes come back through the
//! shard's inbox and are routed to the WebSocket connection or the waiting REST or gRPC request
//! that sent the batch.
//!
//! On a shard, one transport a module: [`http1`] (HTTP/1 on hyper: health, REST, upgrades),
//! [`websocket`] (one connection, one folder), [`grpc`] (HTTP/2 on hyper); [`secure`], the TLS
//! handshake every accepted connection of a TLS port goes through first; [`submit`], the path
//! every transport's batches take to the handoff. The shard's own state and jobs are in
//! [`shard`]; starting shards in [`start()`], a shard's main task in [`run`].
//!
//! This crate does not depend on `raccoon-publish`: the handoff and the inbox messages are
//! [`raccoon_core`]'s. A shard never blocks: no blocking locks, sleeps or blocking I/O (this
//! crate's `clippy.toml` bans them); full queues turn into "stop reading this connection" (see
//! [`submit`]). The one state shards share is the [`registry`] of open connections and their
//! identifiers, touched at connect and close only.

pub mod dedup;
mod grpc;
mod http1;
mod registry;
mod run;
mod secure;
mod settings;
mod shard;
mod start;
mod submit;
mod websocket;

pub use settings::{AckMode, ListenerTls, ServerConfig, ShardConfig};
pub use shard::ShardSummary;
pub use start::{start, ShardError, ShardHandle};
