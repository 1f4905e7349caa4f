//! What Raccoon's shards and publisher threads share, and all they share: the messages that
//! cross between them and the queues they cross ([`handoff`]), the topic an event is routed to
//! ([`topic`]), and the health flags the publishers' checker sets and the shards read
//! ([`health`]).
//!
//! `raccoon-shard` and `raccoon-publish` each depend on this crate and never on each other, so
//! the only way for a batch to leave a shard is [`handoff::Handoff::offer`], and the only way
//! back is the shard's inbox ([`handoff::ShardMsg`]). Nothing here knows a runtime, a socket or
//! Kafka; every type is `Send`.

pub mod handoff;
pub mod health;
pub mod topic;
