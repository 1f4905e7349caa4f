//! A three-node Kafka cluster of a test's own, through `scripts/kafka-cluster.sh`: KRaft, every
//! node a combined broker and controller, topics replicated 3 times with `min.insync.replicas=2`,
//! auto-created with one partition. Free 127.0.0.1 ports, nodes killed (`-9`), stopped and
//! started one at a time, and what the cluster's metadata says about a partition: its leader,
//! replicas and in-sync replicas.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::binary::workspace_dir;
use crate::kafka::run_script;
use crate::names::free_ports;

/// How long one metadata request may take (a fresh answer from any live node).
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// What the cluster's metadata says about one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    /// The node that leads it, if one does.
    pub leader: Option<i32>,
    /// The nodes holding a replica.
    pub replicas: Vec<i32>,
    /// The replicas in sync with the leader (the leader included).
    pub isr: Vec<i32>,
}

/// Three brokers of a test's own on free 127.0.0.1 ports, nodes 1, 2 and 3 ([`PrivateCluster::NODES`]),
/// with extra `scripts/kafka-cluster.sh` (and so `scripts/kafka.sh`) environment. Every node is
/// killed and the data removed when it is dropped, also when the test fails.
pub struct PrivateCluster {
    ports: [u16; 3],
    env: Vec<(String, String)>,
    dir: String,
    metadata: OnceLock<BaseConsumer>,
}

impl PrivateCluster {
    /// The node ids.
    pub const NODES: [i32; 3] = [1, 2, 3];

    /// Chooses its ports and data directory; nothing runs until [`PrivateCluster::start`].
    pub fn new(name: &str, extra: &[(&str, &str)]) -> PrivateCluster {
        let dir = format!("/tmp/raccoon-kafka-cluster-{name}-{}", std::process::id());
        let [p1, p2, p3, c1, c2, c3] = free_ports::<6>();
        let mut env = vec![
            ("KAFKA_CLUSTER_PORTS".to_owned(), format!("{p1},{p2},{p3}")),
            ("KAFKA_CLUSTER_CONTROLLER_PORTS".to_owned(), format!("{c1},{c2},{c3}")),
            ("KAFKA_CLUSTER_DIR".to_owned(), dir.clone()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        PrivateCluster { ports: [p1, p2, p3], env, dir, metadata: OnceLock::new() }
    }

    /// Starts every node (in parallel) and returns once all three are ready.
    pub fn start(&self) {
        self.run(&["start"]);
    }

    /// Kills `node` with SIGKILL (a crash); its data stays for [`PrivateCluster::start_node`].
    pub fn kill(&self, node: i32) {
        self.run(&["kill", &Self::checked(node).to_string()]);
    }

    /// Starts `node` again and returns once it is ready (after a kill, once its old session has
    /// expired: about 7 s).
    pub fn start_node(&self, node: i32) {
        self.run(&["start-node", &Self::checked(node).to_string()]);
    }

    /// Stops `node` cleanly (a controlled shutdown: the partitions it leads move first).
    pub fn stop_node(&self, node: i32) {
        self.run(&["stop-node", &Self::checked(node).to_string()]);
    }

    /// `node`'s client address, `127.0.0.1:port`.
    pub fn addr(&self, node: i32) -> String {
        format!("127.0.0.1:{}", self.ports[Self::index(node)])
    }

    /// Every node's client address, comma-separated: `bootstrap.servers` for a client that
    /// must find the cluster whichever nodes are down.
    pub fn bootstrap(&self) -> String {
        Self::NODES.map(|n| self.addr(n)).join(",")
    }

    /// The partition as the cluster's metadata has it now; `None` while the topic is unknown or
    /// no node answers within 5 s.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionState> {
        let metadata = self.metadata_client().fetch_metadata(Some(topic), METADATA_TIMEOUT).ok()?;
        let topic = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none())?;
        let p = topic.partitions().iter().find(|p| p.id() == partition && p.error().is_none())?;
        Some(PartitionState {
            leader: (p.leader() >= 0).then_some(p.leader()),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
    }

    /// The node leading the partition now, from the cluster's metadata.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        self.partition(topic, partition)?.leader
    }

    /// Polls the metadata until the partition's state satisfies `holds`, and returns it; panics
    /// after `limit`, naming `what` and the last state seen.
    pub fn wait_for_partition(
        &self,
        topic: &str,
        partition: i32,
        what: &str,
        limit: Duration,
        holds: impl Fn(&PartitionState) -> bool,
    ) -> PartitionState {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.partition(topic, partition);
            if let Some(state) = state.as_ref().filter(|s| holds(s)) {
                return state.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{topic}-{partition}: never {what} within {limit:?}; last seen {state:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the partition has a leader and exactly `members` in-sync replicas.
    pub fn wait_for_isr(&self, topic: &str, partition: i32, members: usize, limit: Duration) -> PartitionState {
        self.wait_for_partition(topic, partition, &format!("led with {members} in-sync replicas"), limit, |s| {
            s.leader.is_some() && s.isr.len() == members
        })
    }

    /// One client for every metadata request, bootstrapped from all three nodes: it finds a live
    /// node whichever are down. A consumer, so asking about a topic never creates it.
    fn metadata_client(&self) -> &BaseConsumer {
        self.metadata.get_or_init(|| {
            ClientConfig::new()
                .set("bootstrap.servers", self.bootstrap())
                .set("allow.auto.create.topics", "false")
                .create()
                .expect("create a metadata client")
        })
    }

    fn run(&self, args: &[&str]) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_script("scripts/kafka-cluster.sh", args, &env);
    }

    fn index(node: i32) -> usize {
        Self::NODES.iter().position(|&n| n == node).unwrap_or_else(|| panic!("no node {node}: nodes are 1, 2 and 3"))
    }

    fn checked(node: i32) -> i32 {
        Self::index(node);
        node
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        drop(self.metadata.take());
        if std::thread::panicking() {
            for node in Self::NODES {
                let log = std::fs::read_to_string(format!("{}/node-{node}/kafka.log", self.dir)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!("--- last lines of node {node}'s kafka.log ---\n{}", tail.join("\n"));
            }
        }
        // The data goes with it, so a crash stop is as good as a clean one and takes no time.
        for node in Self::NODES {
            let _ = Command::new("bash")
                .arg(workspace_dir().join("scripts/kafka-cluster.sh"))
                .args(["kill", &node.to_string()])
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_list_names_every_node_on_ports_of_its_own() {
        let cluster = PrivateCluster::new("unit", &[("KAFKA_START_TIMEOUT", "30")]);
        let addrs: Vec<String> = PrivateCluster::NODES.iter().map(|&n| cluster.addr(n)).collect();
        assert_eq!(cluster.bootstrap(), addrs.join(","));
        let mut ports: Vec<&str> =
            addrs.iter().map(|a| a.strip_prefix("127.0.0.1:").expect("a 127.0.0.1 address")).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 3, "{addrs:?}");
        assert!(cluster.env.iter().any(|(k, v)| k == "KAFKA_START_TIMEOUT" && v == "30"));
        // Never started: dropping it runs the kill actions against nodes that are not there.
    }

    #[test]
    #[should_panic(expected = "no node 4")]
    fn there_is_no_fourth_node() {
        PrivateCluster::new("unit-4", &[]).addr(4);
    }
}
