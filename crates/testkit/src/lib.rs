//! The test kit of the Raccoon workspace: what the server's integration tests, the Rust client's
//! and the CLI's tests and the throughput bench share. Real parts only: the built `raccoon`
//! binary, the repository's Kafka broker (`scripts/kafka.sh`) and consumers reading back from
//! it. Everything targets 127.0.0.1 and every wait is bounded.
//!
//! - [`addresses`]: the server's addresses line (its one machine-readable output), parsed.
//! - [`server`]: a server process started from a binary path, its log, its addresses, stopping it.
//! - [`binary`]: where the workspace's built `raccoon` binary is, built first if needed.
//! - [`kafka`]: the shared broker and private ones, through `scripts/kafka.sh`.
//! - [`cluster`]: a three-node cluster of a test's own (`scripts/kafka-cluster.sh`): nodes killed,
//!   stopped and started, partition leaders and in-sync replicas from its metadata.
//! - [`consume`](mod@consume): reading a topic back and asserting it holds exactly what was sent.
//! - [`http`]: plain HTTP/1.1 requests to the server's ports, and polling one until it answers.
//! - [`prometheus`]: samples in a Prometheus text exposition, scraped until they hold.
//! - [`names`]: unique topic and group names; free ports.
//! - [`pki`]: a test CA and the certificates it signs (server, expired, wrong host, client), as
//!   PEM files.
//!
//! CPU and memory of a process have one reader in the workspace, the CLI's `procfs` module,
//! run-time code of `load`, `idle` and `ceiling`; tests and the throughput bench hand the CLI
//! `--server-pid` [`TestServer::pid`] and read its report.

pub mod addresses;
pub mod binary;
pub mod cluster;
pub mod consume;
pub mod http;
pub mod kafka;
pub mod names;
pub mod pki;
pub mod prometheus;
pub mod server;

pub use addresses::Addresses;
pub use binary::{built_server, workspace_dir};
pub use cluster::{PartitionState, PrivateCluster};
pub use consume::{assert_topic_holds, consume, consume_full, consume_records, consume_to_end, Record};
pub use http::{get_from, http_to, wait_for_status};
pub use kafka::{create_topic, kafka_script, shared_kafka, PrivateBroker, KAFKA};
pub use names::{free_port, free_ports, unique};
pub use pki::{CertFiles, KeyKind, TestPki};
pub use prometheus::{sample, scrape_until, sum_of};
pub use server::TestServer;
