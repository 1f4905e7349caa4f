use super::*;
use raccoon_protocol::cors::CorsConfig;

fn sources(env: &[(&str, &str)]) -> Sources {
    Sources {
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        available_cpus: vec![0, 1],
        ..Sources::default()
    }
}

fn err_text(s: &Sources) -> String {
    Config::build(s).unwrap_err().to_string()
}

#[test]
fn no_configuration_at_all_works() {
    let cfg = Config::build(&sources(&[])).unwrap();
    assert_eq!(cfg.server.port, 8080);
    assert_eq!(cfg.server.shard_cpus, vec![0, 1]);
    assert_eq!(cfg.server.max_conn, 30_000);
    assert_eq!(cfg.ack_mode, AckMode::OnReceipt);
    assert_eq!(cfg.publisher.kafka["bootstrap.servers"], "127.0.0.1:9092");
    assert_eq!(cfg.server.identity.id_header, "X-User-ID");
    assert_eq!(cfg.server.ping_interval, Duration::from_secs(30));
}

#[test]
fn precedence_is_default_file_env_cli() {
    let mut s = sources(&[("SERVER_WEBSOCKET_PORT", "9001"), ("EVENT_ACK", "1")]);
    s.file = Some((
        "raccoon.yaml".into(),
        "server:\n  websocket:\n    port: 9000\n    max_conn: 10\nevent:\n  ack: 0\n".into(),
    ));
    s.cli = vec![("event.ack".into(), "0".into())];
    let cfg = Config::build(&s).unwrap();
    assert_eq!(cfg.server.port, 9001, "env beats file");
    assert_eq!(cfg.server.max_conn, 10, "file beats default");
    assert_eq!(cfg.ack_mode, AckMode::OnReceipt, "cli beats env");
}

#[test]
fn kafka_passthrough_from_env_and_yaml() {
    let mut s = sources(&[("PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS", "127.0.0.1:19092")]);
    s.file = Some((
        "f.yaml".into(),
        "publisher:\n  kafka:\n    client:\n      linger_ms: 20\n      bootstrap_servers: ignored:1\n".into(),
    ));
    let cfg = Config::build(&s).unwrap();
    assert_eq!(cfg.publisher.kafka["bootstrap.servers"], "127.0.0.1:19092");
    assert_eq!(cfg.publisher.kafka["linger.ms"], "20");
}

#[test]
fn unrelated_env_vars_are_ignored() {
    assert!(Config::build(&sources(&[("PATH", "/bin"), ("SERVER_WEBSOCKET_PORTX", "1")])).is_ok());
}

#[test]
fn unknown_yaml_key_is_named() {
    let mut s = sources(&[]);
    s.file = Some(("f.yaml".into(), "server:\n  websocket:\n    prot: 1\n".into()));
    assert_eq!(err_text(&s), "unknown configuration key SERVER_WEBSOCKET_PROT (from file f.yaml)");
}

#[test]
fn unknown_cli_key_is_named() {
    let mut s = sources(&[]);
    s.cli = vec![("no.such.key".into(), "1".into())];
    assert!(err_text(&s).contains("NO_SUCH_KEY"));
}

#[test]
fn bad_values_name_key_value_and_source() {
    assert_eq!(
        err_text(&sources(&[("SERVER_WEBSOCKET_PORT", "80800")])),
        "invalid value \"80800\" for SERVER_WEBSOCKET_PORT (from environment): expected a whole number from 0 to 65535"
    );
    assert!(err_text(&sources(&[("EVENT_ACK", "2")])).contains("EVENT_ACK"));
    assert!(err_text(&sources(&[("SERVER_WEBSOCKET_CHECK_ORIGIN", "maybe")])).contains("true or false"));
    assert!(err_text(&sources(&[("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", "a b-%s")])).contains("0x20"));
    assert!(err_text(&sources(&[("SERVER_WEBSOCKET_CONN_ID_HEADER", "X User")])).contains("header name"));
}

#[test]
fn pong_wait_and_ping_interval_are_independent() {
    // Raccoon accepts any pair, and the pong wait counts from the first unanswered ping here.
    let cfg = Config::build(&sources(&[
        ("SERVER_WEBSOCKET_PING_INTERVAL_MS", "10000"),
        ("SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS", "5000"),
    ]))
    .unwrap();
    assert_eq!(cfg.server.ping_interval, Duration::from_secs(10));
    assert_eq!(cfg.server.pong_wait, Duration::from_secs(5));
    assert!(err_text(&sources(&[("SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS", "0")]))
        .contains("SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS"));
}

#[test]
fn shard_placement() {
    let cfg = Config::build(&sources(&[("SERVER_SHARDS", "1")])).unwrap();
    assert_eq!(cfg.server.shard_cpus, vec![0]);
    let cfg = Config::build(&sources(&[("SERVER_CPU_LIST", "1")])).unwrap();
    assert_eq!(cfg.server.shard_cpus, vec![1]);
    assert!(err_text(&sources(&[("SERVER_SHARDS", "3")])).contains("3 shards need 3 CPUs"));
    assert!(err_text(&sources(&[("SERVER_CPU_LIST", "0,7")])).contains("CPU 7 is not available"));
}

#[test]
fn cpu_lists_parse() {
    assert_eq!(parse_cpu_list("0-3,6").unwrap(), vec![0, 1, 2, 3, 6]);
    assert_eq!(parse_cpu_list(" 2 ").unwrap(), vec![2]);
    assert!(parse_cpu_list("3-1").is_err());
    assert!(parse_cpu_list("a").is_err());
    assert!(parse_cpu_list("1,1").is_err());
}

#[test]
fn yaml_must_be_a_mapping() {
    let mut s = sources(&[]);
    s.file = Some(("f.yaml".into(), "- a\n- b\n".into()));
    assert!(err_text(&s).contains("mapping"));
    s.file = Some(("f.yaml".into(), "server: [\n".into()));
    assert!(err_text(&s).starts_with("cannot parse config file f.yaml"));
}

#[test]
fn example_config_matches_defaults() {
    // The shipped example lists every key at its default: it must parse, hold no unknown key,
    // and change nothing.
    let text = include_str!("../../../raccoon.example.yaml");
    let mut s = sources(&[]);
    s.file = Some(("raccoon.example.yaml".into(), text.into()));
    let cfg = Config::build(&s).unwrap();
    let flat = flatten_yaml("x", text).unwrap();
    for spec in KEYS {
        assert!(flat.iter().any(|(k, _)| k == spec.env), "{} is missing from raccoon.example.yaml", spec.env);
    }
    let defaults = Config::build(&sources(&[])).unwrap();
    let values = |c: &Config| {
        c.effective
            .iter()
            .filter(|(k, _, _)| !k.starts_with(KAFKA_CLIENT_PREFIX))
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&cfg), values(&defaults));
    assert_eq!(cfg.publisher.kafka, defaults.publisher.kafka);
}

/// The text of README.md between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn readme_section(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = format!("<!-- {name}:start -->\n");
    let end = format!("<!-- {name}:end -->");
    let from = readme.find(&start).unwrap_or_else(|| panic!("README.md has no {start:?} marker")) + start.len();
    let to = readme[from..].find(&end).unwrap_or_else(|| panic!("README.md has no {end:?} marker")) + from;
    readme[from..to].to_owned()
}

#[test]
fn readme_lists_every_key_as_the_code_defines_it() {
    let want = keys::markdown_reference();
    assert!(
        readme_section("config-reference") == want,
        "README.md's configuration table is out of date; replace it with:\n{want}"
    );
    let want = keys::markdown_defaults();
    assert!(
        readme_section("kafka-defaults") == want,
        "README.md's librdkafka defaults table is out of date; replace it with:\n{want}"
    );
}

#[test]
fn dedup_is_off_by_default_and_its_window_is_validated() {
    assert_eq!(Config::build(&sources(&[])).unwrap().server.dedup_window, None);
    let on = Config::build(&sources(&[("SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED", "true")])).unwrap();
    assert_eq!(on.server.dedup_window, Some(256));
    let mut s = sources(&[("SERVER_BATCH_DEDUP_WINDOW", "16")]);
    s.file = Some(("f.yaml".into(), "server:\n  batch:\n    dedup_in_connection_enabled: true\n".into()));
    assert_eq!(Config::build(&s).unwrap().server.dedup_window, Some(16));
    let text = err_text(&sources(&[("SERVER_BATCH_DEDUP_WINDOW", "0")]));
    assert!(text.contains("SERVER_BATCH_DEDUP_WINDOW"), "{text}");
    let text = err_text(&sources(&[("SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED", "maybe")]));
    assert!(text.contains("SERVER_BATCH_DEDUP_IN_CONNECTION_ENABLED"), "{text}");
}

#[test]
fn shards_sleep_at_once_unless_told_to_spin() {
    assert_eq!(Config::build(&sources(&[])).unwrap().server.spin_before_park, None);
    let spin = Config::build(&sources(&[("SERVER_SPIN_BEFORE_PARK_US", "50")])).unwrap();
    assert_eq!(spin.server.spin_before_park, Some(Duration::from_micros(50)));
    let text = err_text(&sources(&[("SERVER_SPIN_BEFORE_PARK_US", "2000000")]));
    assert!(text.contains("SERVER_SPIN_BEFORE_PARK_US"), "{text}");
}

#[test]
fn cors_is_off_by_default_and_its_keys_are_then_ignored() {
    assert_eq!(Config::build(&sources(&[])).unwrap().server.cors, None);
    let off = sources(&[("SERVER_CORS_ALLOWED_ORIGIN", "not an origin"), ("SERVER_CORS_ALLOWED_METHODS", "")]);
    assert_eq!(Config::build(&off).unwrap().server.cors, None);
}

#[test]
fn cors_from_env_as_in_raccoons_integration_test() {
    let cfg = Config::build(&sources(&[
        ("SERVER_CORS_ENABLED", "true"),
        ("SERVER_CORS_ALLOWED_ORIGIN", "http://localhost:3000, http://localhost:8080"),
        ("SERVER_CORS_PREFLIGHT_MAX_AGE_SECONDS", "60"),
        ("SERVER_WEBSOCKET_CONN_GROUP_HEADER", "X-User-Group"),
    ]))
    .unwrap();
    let cors = cfg.server.cors.expect("enabled");
    assert_eq!(
        cors,
        CorsConfig {
            allowed_origins: vec!["http://localhost:3000".into(), "http://localhost:8080".into()],
            allowed_methods: vec!["GET".into(), "HEAD".into(), "POST".into(), "OPTIONS".into()],
            allowed_headers: vec!["Content-Type".into(), "X-User-ID".into(), "X-User-Group".into()],
            allow_credentials: false,
            max_age_secs: 60,
        }
    );
}

#[test]
fn cors_from_yaml_lists_and_headers_are_augmented_whatever_the_source() {
    let mut s = sources(&[]);
    s.file = Some((
        "f.yaml".into(),
        "server:\n  websocket:\n    conn:\n      id_header: X-Id\n      group_header: X-Group\n  cors:\n    enabled: true\n    \
         allowed_origin: ['*']\n    allowed_methods: [get, PUT]\n    allowed_headers: [content-type, X-Trace]\n    \
         allow_credentials: true\n"
            .into(),
    ));
    let cors = Config::build(&s).unwrap().server.cors.expect("enabled");
    assert_eq!(cors.allowed_origins, ["*"]);
    assert_eq!(cors.allowed_methods, ["get", "PUT"]);
    // content-type is not added twice; the id and group headers from YAML are added.
    assert_eq!(cors.allowed_headers, ["content-type", "X-Trace", "X-Id", "X-Group"]);
    assert!(cors.allow_credentials);
    assert_eq!(cors.max_age_secs, 0);
}

#[test]
fn cors_values_are_validated_naming_the_key() {
    let on =
        |key: &'static str, value: &'static str| err_text(&sources(&[("SERVER_CORS_ENABLED", "true"), (key, value)]));
    for bad in [
        "localhost:3000",
        "http://",
        "http://a b",
        "https://app.example/",
        "http://h:99999",
        "http://h:",
        "*x",
        "http://[::1",
        "http://[zz]:1",
        "http://u@h",
        "http://a..b",
        "1http://h",
    ] {
        let text = on("SERVER_CORS_ALLOWED_ORIGIN", bad);
        assert!(text.contains("SERVER_CORS_ALLOWED_ORIGIN") && text.contains("is not * or an origin"), "{bad}: {text}");
    }
    let text = on("SERVER_CORS_ALLOWED_METHODS", "GET,PO ST");
    assert!(text.contains("SERVER_CORS_ALLOWED_METHODS") && text.contains("\"PO ST\" is not an HTTP method"), "{text}");
    let text = on("SERVER_CORS_ALLOWED_METHODS", " , ");
    assert!(text.contains("SERVER_CORS_ALLOWED_METHODS") && text.contains("at least one"), "{text}");
    let text = on("SERVER_CORS_ALLOWED_HEADERS", "X-Ok,X:Bad");
    assert!(text.contains("SERVER_CORS_ALLOWED_HEADERS") && text.contains("\"X:Bad\""), "{text}");
    assert!(on("SERVER_CORS_ALLOW_CREDENTIALS", "maybe").contains("SERVER_CORS_ALLOW_CREDENTIALS"));
    assert!(on("SERVER_CORS_PREFLIGHT_MAX_AGE_SECONDS", "-1").contains("SERVER_CORS_PREFLIGHT_MAX_AGE_SECONDS"));
    assert!(err_text(&sources(&[("SERVER_CORS_ENABLED", "yes please")])).contains("SERVER_CORS_ENABLED"));
}

#[test]
fn cors_origins_that_are_accepted() {
    let good = "*,http://localhost:3000,https://app.example.com,http://127.0.0.1:8080,http://[::1]:3000,\
                https://[2001:db8::1],chrome-extension://abcdef,HTTP://Example.COM";
    let cfg = Config::build(&sources(&[("SERVER_CORS_ENABLED", "1"), ("SERVER_CORS_ALLOWED_ORIGIN", good)])).unwrap();
    assert_eq!(cfg.server.cors.unwrap().allowed_origins.len(), 8);
}

#[test]
fn publisher_type_is_kafka_or_log() {
    assert_eq!(Config::build(&sources(&[])).unwrap().publisher.kind, PublisherKind::Kafka);
    let log = Config::build(&sources(&[("PUBLISHER_TYPE", "log")])).unwrap();
    assert_eq!(log.publisher.kind, PublisherKind::Log);
    let mut s = sources(&[]);
    s.file = Some(("f.yaml".into(), "publisher:\n  type: log\n".into()));
    assert_eq!(Config::build(&s).unwrap().publisher.kind, PublisherKind::Log);
    assert_eq!(
        err_text(&sources(&[("PUBLISHER_TYPE", "pubsub")])),
        "invalid value \"pubsub\" for PUBLISHER_TYPE (from environment): expected kafka or log (pubsub and kinesis are Raccoon publishers this server does not have)"
    );
    assert_eq!(
        err_text(&sources(&[("PUBLISHER_TYPE", "stdout")])),
        "invalid value \"stdout\" for PUBLISHER_TYPE (from environment): expected kafka or log"
    );
}

#[test]
fn records_are_raccoons_by_default_and_the_dead_letter_topic_must_be_one_valid_name() {
    use raccoon_publish::{RecordKey, Records};
    assert_eq!(Config::build(&sources(&[])).unwrap().publisher.records, Records::default());
    let cfg = Config::build(&sources(&[
        ("PUBLISHER_KAFKA_RECORD_KEY", "CONN_ID"),
        ("PUBLISHER_KAFKA_RECORD_HEADERS", "true"),
        ("PUBLISHER_DEAD_LETTER_TOPIC", "clickstream-dead-letters"),
    ]))
    .unwrap();
    let want =
        Records { key: RecordKey::ConnId, headers: true, dead_letter_topic: Some("clickstream-dead-letters".into()) };
    assert_eq!(cfg.publisher.records, want);
    assert_eq!(
        err_text(&sources(&[("PUBLISHER_DEAD_LETTER_TOPIC", "dead-%s")])),
        "invalid value \"dead-%s\" for PUBLISHER_DEAD_LETTER_TOPIC (from environment): expected one topic name (%s has no meaning here)"
    );
    let bad = err_text(&sources(&[("PUBLISHER_DEAD_LETTER_TOPIC", "dead letters")]));
    assert!(bad.contains("PUBLISHER_DEAD_LETTER_TOPIC") && bad.contains("not allowed in a Kafka topic name"), "{bad}");
    let bad = err_text(&sources(&[("PUBLISHER_KAFKA_RECORD_KEY", "user")]));
    assert!(bad.contains("PUBLISHER_KAFKA_RECORD_KEY") && bad.contains("conn_id"), "{bad}");
}

#[test]
fn bind_address_is_both_families_unless_an_address_pins_one() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    assert_eq!(Config::build(&sources(&[])).unwrap().server.bind, BindAddress::DualStack);
    let pinned = |text: &str| Config::build(&sources(&[("SERVER_BIND_ADDRESS", text)])).unwrap().server.bind;
    assert_eq!(pinned("0.0.0.0"), BindAddress::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    assert_eq!(pinned("::"), BindAddress::Ip(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
    assert_eq!(pinned(""), BindAddress::DualStack);
    let text = err_text(&sources(&[("SERVER_BIND_ADDRESS", "localhost")]));
    assert!(text.contains("SERVER_BIND_ADDRESS") && text.contains(":: (IPv6 only)"), "{text}");
    let metrics = Config::build(&sources(&[("METRIC_PROMETHEUS_ENABLED", "true")])).unwrap().metrics;
    assert_eq!(metrics.prometheus, Some((9090, "/metrics".to_owned())));
}

#[test]
fn upgrade_origins_come_from_their_key_else_from_cors() {
    let origins = |env: &[(&str, &str)]| Config::build(&sources(env)).unwrap().server.upgrade_origins;
    let list = |entries: &[&str]| UpgradeOrigins::Checked(OriginList::parse(entries.iter().copied()).unwrap());
    assert_eq!(origins(&[]), list(&[]), "Raccoon's same-origin rule alone");
    assert_eq!(origins(&[("SERVER_WEBSOCKET_CHECK_ORIGIN", "false")]), UpgradeOrigins::Any);
    let own = [("SERVER_WEBSOCKET_ALLOWED_ORIGINS", "https://*.shop.test, http://localhost:3000")];
    assert_eq!(origins(&own), list(&["https://*.shop.test", "http://localhost:3000"]));
    let cors = [("SERVER_CORS_ENABLED", "true"), ("SERVER_CORS_ALLOWED_ORIGIN", "http://localhost:3000")];
    assert_eq!(origins(&cors), list(&["http://localhost:3000"]), "the CORS list by default");
    assert_eq!(origins(&[cors[0]]), UpgradeOrigins::Checked(OriginList::any()), "CORS for every origin");
    let both = [cors[0], cors[1], ("SERVER_WEBSOCKET_ALLOWED_ORIGINS", "https://app.test")];
    assert_eq!(origins(&both), list(&["https://app.test"]), "their own key wins");
    let off = [cors[0], cors[1], ("SERVER_WEBSOCKET_CHECK_ORIGIN", "false")];
    assert_eq!(origins(&off), UpgradeOrigins::Any, "the check off accepts any origin");
    // CORS origins may be wildcards too.
    let wild = [cors[0], ("SERVER_CORS_ALLOWED_ORIGIN", "https://*.shop.test")];
    assert_eq!(origins(&wild), list(&["https://*.shop.test"]));
    let text = err_text(&sources(&[("SERVER_WEBSOCKET_ALLOWED_ORIGINS", "shop.test")]));
    assert!(text.contains("SERVER_WEBSOCKET_ALLOWED_ORIGINS") && text.contains("\"shop.test\""), "{text}");
    let text = err_text(&sources(&[cors[0], ("SERVER_CORS_ALLOWED_ORIGIN", "https://a.*.test")]));
    assert!(text.contains("SERVER_CORS_ALLOWED_ORIGIN"), "{text}");
}

#[test]
fn browser_identity_sources_are_off_by_default() {
    let identity = Config::build(&sources(&[])).unwrap().server.identity;
    assert_eq!(
        identity,
        IdentityRules {
            id_header: "X-User-ID".into(),
            group_header: None,
            group_default: "--default--".into(),
            id_query_param: None,
            group_query_param: None,
            subprotocol: false,
            anonymous: false,
        }
    );
    let on = Config::build(&sources(&[
        ("SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM", "user_id"),
        ("SERVER_WEBSOCKET_CONN_GROUP_QUERY_PARAM", "group"),
        ("SERVER_WEBSOCKET_CONN_SUBPROTOCOL_ENABLED", "true"),
        ("SERVER_WEBSOCKET_CONN_ID_ANONYMOUS", "true"),
    ]))
    .unwrap()
    .server
    .identity;
    assert_eq!(on.id_query_param.as_deref(), Some("user_id"));
    assert_eq!(on.group_query_param.as_deref(), Some("group"));
    assert!(on.subprotocol && on.anonymous);
    let text = err_text(&sources(&[("SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM", "a=b")]));
    assert!(text.contains("SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM"), "{text}");
    let text = err_text(&sources(&[("SERVER_WEBSOCKET_CONN_ID_ANONYMOUS", "sometimes")]));
    assert!(text.contains("SERVER_WEBSOCKET_CONN_ID_ANONYMOUS"), "{text}");
}

#[test]
fn every_key_is_read() {
    // With every switch on, building reads each key once at least: a key in the table that the
    // assembler forgot would be accepted and silently do nothing.
    let s = sources(&[
        ("SERVER_CORS_ENABLED", "true"),
        ("METRIC_PROMETHEUS_ENABLED", "true"),
        ("METRIC_STATSD_ENABLED", "true"),
    ]);
    let raw = Raw::merge(&s).unwrap();
    Config::from_raw(&raw, &s.available_cpus).unwrap();
    let read = raw.read.borrow();
    let unread: Vec<_> = KEYS.iter().map(|k| k.env).filter(|env| !read.contains(env)).collect();
    assert!(unread.is_empty(), "keys never read: {unread:?}");
    assert_eq!(read.len(), KEYS.len());
}

#[test]
fn every_range_fits_its_type_and_every_default_is_in_it() {
    keys::check_ranges().unwrap();
}

#[test]
fn every_choice_of_every_key_is_accepted() {
    for spec in KEYS {
        let keys::Range::OneOf(words) = spec.range else { continue };
        for (word, _) in words {
            for text in [word.to_string(), word.to_uppercase()] {
                Config::build(&sources(&[(spec.env, &text)])).unwrap_or_else(|e| panic!("{}={text}: {e}", spec.env));
            }
        }
        let text = err_text(&sources(&[(spec.env, "neither")]));
        assert!(text.contains(&format!("expected {}", words[0].0)), "{text}");
    }
}

#[test]
fn numbers_out_of_range_name_the_range() {
    assert_eq!(
        err_text(&sources(&[("PUBLISHER_KAFKA_PRODUCER_THREADS", "0")])),
        "invalid value \"0\" for PUBLISHER_KAFKA_PRODUCER_THREADS (from environment): expected a whole number from 1 to 256"
    );
    assert!(err_text(&sources(&[("SERVER_HTTP_IDLE_TIMEOUT_MS", "-1")])).contains("from 1 to 86400000"));
    assert!(
        err_text(&sources(&[("EVENT_ACK", "2")])).ends_with("expected 0 (ack on receipt) or 1 (ack on Kafka delivery)")
    );
}

#[test]
fn tls_files_come_in_pairs_and_the_grpc_port_follows_or_opts_out() {
    use raccoon_rt::tls::ClientAuth;
    let tls = |pairs: &[(&str, &str)]| Config::build(&sources(pairs)).map(|c| c.tls);
    assert_eq!(tls(&[]).unwrap(), TlsPorts::default(), "cleartext by default, as Raccoon");
    let both = [("SERVER_TLS_CERT_FILE", "/etc/raccoon/cert.pem"), ("SERVER_TLS_KEY_FILE", "/etc/raccoon/key.pem")];
    let ports = tls(&both).unwrap();
    let http = ports.http.unwrap();
    assert_eq!(http.cert_file.to_str(), Some("/etc/raccoon/cert.pem"));
    assert_eq!(http.keys, ["SERVER_TLS_CERT_FILE", "SERVER_TLS_KEY_FILE", "SERVER_TLS_CLIENT_CA_FILE"]);
    assert_eq!(ports.grpc.unwrap().cert_file, http.cert_file, "gRPC follows SERVER_TLS_*");
    assert!(ports.prometheus.is_none(), "Prometheus has keys of its own");

    let mut off = both.to_vec();
    off.push(("SERVER_GRPC_TLS_ENABLED", "false"));
    assert!(tls(&off).unwrap().grpc.is_none());
    let mut own = both.to_vec();
    own.extend([("SERVER_GRPC_TLS_CERT_FILE", "/g/cert.pem"), ("SERVER_GRPC_TLS_KEY_FILE", "/g/key.pem")]);
    let grpc = tls(&own).unwrap().grpc.unwrap();
    assert_eq!((grpc.cert_file.to_str(), grpc.keys[0]), (Some("/g/cert.pem"), "SERVER_GRPC_TLS_CERT_FILE"));

    let text = err_text(&sources(&[("SERVER_TLS_CERT_FILE", "/c.pem")]));
    assert!(text.contains("SERVER_TLS_KEY_FILE") && text.contains("private key of SERVER_TLS_CERT_FILE"), "{text}");
    let text = err_text(&sources(&[("SERVER_TLS_CLIENT_CA_FILE", "/ca.pem")]));
    assert!(text.contains("SERVER_TLS_CLIENT_CA_FILE") && text.contains("need TLS"), "{text}");

    let mut mtls = both.to_vec();
    mtls.extend([("SERVER_TLS_CLIENT_CA_FILE", "/ca.pem"), ("SERVER_TLS_CLIENT_AUTH", "Optional")]);
    let http = tls(&mtls).unwrap().http.unwrap();
    assert_eq!((http.client_ca_file.unwrap().to_str(), http.client_auth), (Some("/ca.pem"), ClientAuth::Optional));
    assert!(err_text(&sources(&[("SERVER_TLS_CLIENT_AUTH", "sometimes")])).contains("SERVER_TLS_CLIENT_AUTH"));

    let mut prometheus = vec![("METRIC_PROMETHEUS_ENABLED", "true")];
    prometheus.extend([("METRIC_PROMETHEUS_TLS_CERT_FILE", "/p.pem"), ("METRIC_PROMETHEUS_TLS_KEY_FILE", "/p.key")]);
    let ports = tls(&prometheus).unwrap();
    assert!(ports.http.is_none() && ports.prometheus.unwrap().client_ca_file.is_none());
}
