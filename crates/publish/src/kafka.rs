//! librdkafka properties: Raccoon v0.3's defaults, overridden by any `PUBLISHER_KAFKA_CLIENT_<PROP>`.
//!
//! Raccoon v0.1–v0.2 passed every `PUBLISHER_KAFKA_CLIENT_*` through to librdkafka; v0.3
//! narrowed that to a fixed list of 100 keys. This server restores the full passthrough (any
//! property librdkafka knows; a misspelt one fails at startup with librdkafka's own message)
//! and keeps v0.3's explicit defaults.

use std::collections::BTreeMap;

/// Raccoon v0.3's explicit defaults (spec section 2.2), plus a bootstrap server so the quick
/// start needs no configuration (Raccoon requires one to be set), with two departures:
///
/// * `enable.idempotence=true` (Raccoon: false): librdkafka then retries without duplicating
///   or reordering, so a broker restart writes no event twice. It implies `acks=all` and at most
///   5 requests in flight per broker, and librdkafka refuses to start with an explicit
///   conflicting setting (`acks=1`, `max.in.flight` above 5), naming it.
/// * `reconnect.backoff.max.ms=1000` (librdkafka: 10 s): once a broker is back, the producers
///   reconnect within a second, so batches succeed again within seconds of the broker's return.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("bootstrap.servers", "127.0.0.1:9092"),
    ("acks", "-1"),
    ("retries", "2147483647"),
    ("retry.backoff.ms", "100"),
    ("linger.ms", "5"),
    ("queue.buffering.max.messages", "100000"),
    ("queue.buffering.max.kbytes", "1048576"),
    ("batch.num.messages", "10000"),
    ("batch.size", "1000000"),
    ("message.max.bytes", "1000000"),
    ("message.timeout.ms", "300000"),
    ("request.timeout.ms", "30000"),
    ("statistics.interval.ms", "0"),
    ("compression.codec", "none"),
    ("partitioner", "consistent_random"),
    ("enable.idempotence", "true"),
    ("reconnect.backoff.max.ms", "1000"),
    ("client.id", "rdkafka"),
];

/// librdkafka aliases, mapped to the name [`DEFAULTS`] uses, so that setting either spelling
/// replaces the default instead of fighting it.
const ALIASES: &[(&str, &str)] = &[
    ("request.required.acks", "acks"),
    ("message.send.max.retries", "retries"),
    ("queue.buffering.max.ms", "linger.ms"),
    ("delivery.timeout.ms", "message.timeout.ms"),
    ("compression.type", "compression.codec"),
    ("metadata.broker.list", "bootstrap.servers"),
];

/// `BOOTSTRAP_SERVERS` (the part after `PUBLISHER_KAFKA_CLIENT_`) to `bootstrap.servers`,
/// resolving aliases.
pub fn property_name(env_suffix: &str) -> String {
    let name = env_suffix.to_ascii_lowercase().replace('_', ".");
    ALIASES.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, canonical)| (*canonical).to_owned())
}

/// Defaults merged with the given `(ENV_SUFFIX, value)` overrides. An empty override removes
/// the property (librdkafka's own default applies), as Raccoon skips empty values.
pub fn client_properties<'a>(overrides: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    let mut props: BTreeMap<String, String> =
        DEFAULTS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    for (suffix, value) in overrides {
        let name = property_name(suffix);
        if value.trim().is_empty() {
            props.remove(&name);
        } else {
            props.insert(name, value.trim().to_owned());
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_suffix_becomes_dotted_lowercase() {
        assert_eq!(property_name("BOOTSTRAP_SERVERS"), "bootstrap.servers");
        assert_eq!(property_name("ALLOW_AUTO_CREATE_TOPICS"), "allow.auto.create.topics");
    }

    #[test]
    fn aliases_replace_the_default_instead_of_doubling_it() {
        let props = client_properties([("QUEUE_BUFFERING_MAX_MS", "50"), ("REQUEST_REQUIRED_ACKS", "1")]);
        assert_eq!(props["linger.ms"], "50");
        assert_eq!(props["acks"], "1");
        assert!(!props.contains_key("queue.buffering.max.ms"));
        assert!(!props.contains_key("request.required.acks"));
    }

    #[test]
    fn defaults_are_raccoon_v03s() {
        let props = client_properties([]);
        assert_eq!(props["acks"], "-1");
        assert_eq!(props["linger.ms"], "5");
        assert_eq!(props["message.timeout.ms"], "300000");
        assert_eq!(props["partitioner"], "consistent_random");
        assert_eq!(props["enable.idempotence"], "true", "departs from Raccoon: no duplicates after a broker restart");
    }

    #[test]
    fn empty_value_falls_back_to_librdkafka_default() {
        let props = client_properties([("CLIENT_ID", "")]);
        assert!(!props.contains_key("client.id"));
    }

    #[test]
    fn unknown_properties_pass_through() {
        let props = client_properties([("DEBUG", "broker,msg")]);
        assert_eq!(props["debug"], "broker,msg");
    }
}
