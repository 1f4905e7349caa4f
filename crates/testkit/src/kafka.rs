//! Kafka brokers through `scripts/kafka.sh`, which installs (once, cached) and runs a
//! single-node KRaft broker: the shared one on 127.0.0.1:9092 that most tests use with topics of
//! their own, and private ones for tests that stop the broker or change its settings. A cluster
//! of three is [`crate::cluster`]'s.

use std::process::Command;
use std::sync::OnceLock;

use crate::binary::workspace_dir;
use crate::names::free_ports;

/// The shared broker's address.
pub const KAFKA: &str = "127.0.0.1:9092";

/// Runs `scripts/kafka.sh <action>` with extra environment; panics with its output on failure.
pub fn kafka_script(action: &str, env: &[(&str, &str)]) {
    run_script("scripts/kafka.sh", &[action], env);
}

/// Runs the repository's `script` (a path from the workspace root) with `args` and extra
/// environment; panics with its output on failure.
pub(crate) fn run_script(script: &str, args: &[&str], env: &[(&str, &str)]) {
    let output = Command::new("bash")
        .arg(workspace_dir().join(script))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        output.status.success(),
        "{script} {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Makes sure the shared broker on [`KAFKA`] is up (installs and starts it if needed; once per
/// process) and returns its address.
pub fn shared_kafka() -> &'static str {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| kafka_script("start", &[]));
    KAFKA
}

/// A broker of a test's own on free 127.0.0.1 ports, with extra `scripts/kafka.sh`
/// environment; stopped (and its data removed) when dropped, also when the test fails.
pub struct PrivateBroker {
    /// Its bootstrap address, `127.0.0.1:port`.
    pub addr: String,
    env: Vec<(String, String)>,
    data_dir: String,
}

impl PrivateBroker {
    /// Chooses its ports and data directory; nothing runs until [`PrivateBroker::run`]`("start")`.
    pub fn new(name: &str, extra: &[(&str, &str)]) -> PrivateBroker {
        let data_dir = format!("/tmp/raccoon-kafka-{name}-{}", std::process::id());
        let [port, controller] = free_ports::<2>();
        let mut env = vec![
            ("KAFKA_PORT".to_owned(), port.to_string()),
            ("KAFKA_CONTROLLER_PORT".to_owned(), controller.to_string()),
            ("KAFKA_DATA_DIR".to_owned(), data_dir.clone()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        PrivateBroker { addr: format!("127.0.0.1:{port}"), env, data_dir }
    }

    /// Runs `scripts/kafka.sh <action>` (`start`, `stop`, ...) for this broker.
    pub fn run(&self, action: &str) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        kafka_script(action, &env);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace_dir().join("scripts/kafka.sh"))
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Creates `topic` with one partition and the topic settings `config` (e.g.
/// `max.message.bytes`), for tests that need a topic other than the broker's auto-created
/// default. Panics if the broker does not create it within 30 s.
pub fn create_topic(kafka: &str, topic: &str, config: &[(&str, &str)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", kafka).create().expect("create an admin client");
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (key, value) in config {
        new = new.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(30)));
    let results = futures_lite::future::block_on(admin.create_topics(&[new], &options))
        .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
    for result in results {
        if let Err((name, code)) = result {
            panic!("create topic {name}: {code}");
        }
    }
}
