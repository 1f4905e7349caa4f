//! The client crates' tests on the test kit (`crates/testkit`): the workspace's built `raccoon`
//! binary ([`built_server`], built here if needed), one shard, against the shared broker, and
//! read-backs from that broker. Shared with the CLI's tests through `#[path]`.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

pub use raccoon_testkit::*;

/// Starts the built server with one shard on the shared broker, `env` on top (it may set
/// `SERVER_WEBSOCKET_PORT`/`SERVER_GRPC_PORT`); its ports come from its addresses line.
pub fn start_server(env: &[(&str, &str)]) -> TestServer {
    let env = [&[("SERVER_SHARDS", "1")], env].concat();
    TestServer::start(built_server(), shared_kafka(), &env)
}

/// Every record of `topic` on the shared broker ([`raccoon_testkit::consume`]).
pub fn consume(topic: &str, want: usize, limit: Duration) -> Vec<Vec<u8>> {
    raccoon_testkit::consume(shared_kafka(), topic, want, limit)
}

/// Checks `topic` on the shared broker holds exactly `want`, in any order.
pub fn assert_topic_holds(topic: &str, want: &[Vec<u8>]) {
    raccoon_testkit::assert_topic_holds(shared_kafka(), topic, want);
}
