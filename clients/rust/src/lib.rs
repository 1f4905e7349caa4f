//! An async client for the [Raccoon] clickstream server: send batches of events over WebSocket,
//! REST or gRPC and get each batch's [`SendEventResponse`] back.
//!
//! ```no_run
//! use raccoon_client::{Event, RestClient};
//!
//! # async fn run() -> Result<(), raccoon_client::Error> {
//! let client = RestClient::builder("http://127.0.0.1:8080").build()?;
//! let (req_guid, response) = client.send(vec![Event::new("page", "hello")]).await?;
//! println!("{req_guid}: {:?}", response.code);
//! # Ok(()) }
//! ```
//!
//! What lives where:
//! - [`event`]: [`Event`] (a type and its bytes), [`Batch`] (events plus their `req_guid`) and the
//!   [`Serializer`]s that turn data into event bytes ([`Json`], [`Protobuf`], any closure).
//! - [`wire`]: the request encodings ([`Encoding`]) and the [`Response`] type.
//! - [`options`]: what every transport's builder takes: [`App`] info, headers, [`RetryPolicy`],
//!   timeouts, StatsD, TLS (a CA file, a client certificate).
//! - [`rest`], [`grpc`], [`ws`]: the three clients, each with its own builder.
//! - [`stats`]: counters every client keeps and the optional StatsD export.
//! - [`tls`]: the rustls configuration `https://` and `wss://` URLs connect with.
//! - [`error`]: [`Error`] and which errors are retried.
//!
//! Every client is a cheap handle (`Clone`, an `Arc` inside) to one connection or connection
//! pool; there is no global state, so a load generator can create as many as it wants.
//!
//! [Raccoon]: https://github.com/raystack/raccoon
//!
//! [`SendEventResponse`]: crate::pb::SendEventResponse

/// The wire contract `raystack.raccoon.v1beta1`, the server's own generated types ([`raccoon_proto`]).
pub use raccoon_proto as pb;

pub mod error;
pub mod event;
pub mod grpc;
pub mod options;
pub mod rest;
mod retry;
pub mod stats;
pub mod tls;
pub mod wire;
pub mod ws;

pub use error::Error;
pub use event::{Batch, Event, Json, Protobuf, SerializeError, Serializer};
pub use grpc::{GrpcBuilder, GrpcClient};
pub use options::{App, RetryPolicy};
pub use pb::{Code, Status};
pub use rest::{RestBuilder, RestClient};
pub use stats::StatsSnapshot;
pub use wire::{Encoding, Response};
pub use ws::{Ack, AckStream, WsBuilder, WsClient};

/// This crate's name, embedded at build time (`CARGO_PKG_NAME`).
pub const CLIENT_NAME: &str = env!("CARGO_PKG_NAME");
/// This crate's version, embedded at build time (`CARGO_PKG_VERSION`).
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The `User-Agent` every request carries: `raccoon-client/<version>`.
pub const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));
