//! Raccoon: a clickstream ingestion server. Clients send batches of events over long-lived
//! WebSocket connections; every event is published to the Kafka topic its type selects, and every
//! batch is acknowledged back to the client (on receipt, or once Kafka confirmed it).
//!
//! Thread-per-core: one glommio executor per CPU ([`shard`]) owns its sockets and decodes frames
//! in place; batches cross lock-free bounded queues to dedicated Kafka publisher threads
//! ([`publish`]); delivery reports return to the owning shard's inbox. The two sides share only
//! the types in [`types`]. See ARCHITECTURE.md.
//!
//! # Cancel safety
//! Connection tasks are cancelled only at shutdown (the reader) or when their connection ends;
//! a cancelled reader drops at most the frame it was queueing, whose client gets no reply and,
//! with `EVENT_ACK=1`, resends it. Acknowledged batches are never dropped by cancellation: an
//! ack is written only after the batch is in a publisher queue (`EVENT_ACK=0`) or in Kafka
//! (`EVENT_ACK=1`).

// The module docs are written for the people who maintain the server, so they link to private
// items; `cargo doc --document-private-items` renders them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod config;
pub mod dedup;
pub mod health;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod publish;
pub mod rt;
pub mod shard;
pub mod topic;
pub mod types;
