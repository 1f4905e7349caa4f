//! TLS on every port, against the real binary and Kafka, with a CA the tests make
//! (`raccoon_testkit::pki`) and real clients: the Rust client (tokio-rustls, hyper-rustls, tonic)
//! over WebSocket, REST and gRPC, and rustls' own client where a test names versions or ALPN.
//!
//! * every transport over TLS with ECDSA and RSA certificates, events read back from Kafka, and
//!   connection identity as without TLS;
//! * TLS 1.2 and 1.3, `http/1.1` and `h2` by ALPN, CORS, the Prometheus port and a gRPC port
//!   left cleartext;
//! * a plain request on a TLS port answered 400, and counted;
//! * a certificate reloaded by SIGHUP (open connections carry on, new ones see the new one; a
//!   bad file keeps the old);
//! * expired and wrong-host certificates refused by every client;
//! * mTLS required and optional;
//! * a missing or bad file stops the start, naming its key and path.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use raccoon_client::{Code, Encoding, Error, Event, GrpcClient, RestClient, RetryPolicy, WsClient};
use raccoon_protocol::pb;
use raccoon_testkit::consume::CONSUME_LIMIT;

const LIMIT: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A server with `cert` on the HTTP and gRPC ports, events to `<prefix>-%s-log`, acks after
/// Kafka, and `extra` on top.
fn tls_server(prefix: &str, cert: &CertFiles, extra: &[(&str, &str)]) -> TestServer {
    let (cert, key) = (cert.cert.to_str().unwrap(), cert.key.to_str().unwrap());
    let pattern = format!("{prefix}-%s-log");
    let mut env = vec![
        ("SERVER_TLS_CERT_FILE", cert),
        ("SERVER_TLS_KEY_FILE", key),
        ("EVENT_ACK", "1"),
        ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", pattern.as_str()),
        ("METRIC_PROMETHEUS_ENABLED", "true"),
        ("METRIC_PROMETHEUS_PORT", "0"),
    ];
    env.extend_from_slice(extra);
    start_server(shared_kafka(), &env)
}

fn wss(server: &TestServer) -> String {
    format!("wss://localhost:{}", server.addr.port())
}

fn https(addr: SocketAddr) -> String {
    format!("https://localhost:{}", addr.port())
}

/// The three clients of `server`, trusting `ca`, each sending one event of `event_type` with
/// `data`; their outcomes in the order WebSocket, REST (JSON), gRPC.
fn send_each(server: &TestServer, ca: &std::path::Path, event_type: &str, data: &str) -> Vec<Result<Code, Error>> {
    runtime().block_on(async {
        let event = || vec![Event::new(event_type, data.as_bytes().to_vec())];
        let ws = async {
            let client = WsClient::builder(&wss(server)).tls_ca_file(ca).reconnect_attempts(0).connect().await?;
            let sent = client.send_and_wait(event()).await;
            client.close().await;
            sent
        };
        let rest = async {
            RestClient::builder(&https(server.addr))
                .tls_ca_file(ca)
                .encoding(Encoding::Json)
                .retry(RetryPolicy::none())
                .build()?
                .send(event())
                .await
        };
        let grpc = async {
            GrpcClient::builder(&https(server.grpc_addr))
                .tls_ca_file(ca)
                .retry(RetryPolicy::none())
                .build()?
                .send(event())
                .await
        };
        let (ws, rest, grpc) = tokio::join!(ws, rest, grpc);
        [ws, rest, grpc].into_iter().map(|r| r.map(|(_, response)| response.code)).collect()
    })
}

/// WebSocket, REST and gRPC over TLS, with an ECDSA and an RSA certificate: every event lands in
/// Kafka, byte for byte; and a second WebSocket with the same identity is refused as without TLS.
#[test]
fn every_transport_over_tls_lands_in_kafka_with_ecdsa_and_rsa_certificates() {
    let pki = TestPki::new("transports");
    for kind in [KeyKind::EcdsaP256, KeyKind::Rsa2048] {
        let prefix = unique(&format!("tls-{kind:?}").to_lowercase());
        let server = tls_server(&prefix, &pki.server(&format!("server-{kind:?}"), kind), &[]);
        let outcomes = send_each(&server, &pki.ca_file, "landed", &format!("{kind:?}"));
        for outcome in &outcomes {
            assert!(matches!(outcome, Ok(Code::Ok)), "{kind:?}: {outcomes:?}");
        }
        let topic = format!("{prefix}-landed-log");
        let records = consume(shared_kafka(), &topic, 3, CONSUME_LIMIT);
        assert_eq!(records, vec![format!("{kind:?}").into_bytes(); 3], "{kind:?}: one record per transport");

        let refused = runtime().block_on(async {
            let connect = || WsClient::builder(&wss(&server)).tls_ca_file(&pki.ca_file).user_id("twice").connect();
            let first = connect().await.expect("first connection");
            let second = connect().await.expect("the upgrade succeeds; the refusal follows it");
            let refused = second.send_and_wait(vec![Event::new("landed", "x")]).await;
            first.close().await;
            refused
        });
        let error = refused.expect_err("a second connection with the same id is refused");
        assert!(error.to_string().contains("CODE_DUPLICATE") || error.to_string().contains("duplicate"), "{error}");
    }
}

/// What rustls' client negotiated with a port, and the port's answer to one HTTP/1.1 request.
struct Negotiated {
    version: rustls::ProtocolVersion,
    alpn: Option<Vec<u8>>,
    answer: String,
}

/// Connects to `addr` with rustls offering `versions` and `alpn`, trusting `ca`, and sends
/// `request` (if any) on it.
fn negotiate(
    addr: SocketAddr,
    ca: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
    request: Option<&str>,
) -> Result<Negotiated, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).map_err(|e| e.to_string())?;
    }
    let mut answer = String::new();
    if let Some(request) = request {
        stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let _ = stream.read_to_string(&mut answer);
    }
    Ok(Negotiated {
        version: stream.conn.protocol_version().unwrap(),
        alpn: stream.conn.alpn_protocol().map(<[u8]>::to_vec),
        answer,
    })
}

/// TLS 1.3 and 1.2 on both ports; the HTTP port picks `http/1.1` and the gRPC port `h2` from a
/// client offering both; CORS headers and health answers are as in cleartext; the Prometheus
/// port takes TLS with keys of its own; and `SERVER_GRPC_TLS_ENABLED=false` keeps gRPC in
/// cleartext beside a TLS HTTP port.
#[test]
fn versions_alpn_cors_prometheus_and_a_cleartext_grpc_port() {
    let pki = TestPki::new("alpn");
    let cert = pki.server("server", KeyKind::EcdsaP256);
    let metrics_cert = pki.server("metrics", KeyKind::EcdsaP256);
    let server = tls_server(
        &unique("tls-alpn"),
        &cert,
        &[
            ("SERVER_CORS_ENABLED", "true"),
            ("SERVER_CORS_ALLOWED_ORIGIN", "https://shop.example"),
            ("METRIC_PROMETHEUS_TLS_CERT_FILE", metrics_cert.cert.to_str().unwrap()),
            ("METRIC_PROMETHEUS_TLS_KEY_FILE", metrics_cert.key.to_str().unwrap()),
        ],
    );
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let http = negotiate(
            server.addr,
            &pki.ca_file,
            &[version],
            both,
            Some("GET /ping HTTP/1.1\r\nHost: localhost\r\nOrigin: https://shop.example\r\nConnection: close\r\n\r\n"),
        )
        .unwrap();
        assert_eq!(http.version, version.version);
        assert_eq!(http.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(http.answer.starts_with("HTTP/1.1 200 OK\r\n") && http.answer.ends_with("pong"), "{}", http.answer);
        assert!(
            http.answer.to_ascii_lowercase().contains("access-control-allow-origin: https://shop.example"),
            "{}",
            http.answer
        );
        let grpc = negotiate(server.grpc_addr, &pki.ca_file, &[version], both, None).unwrap();
        assert_eq!((grpc.version, grpc.alpn.as_deref()), (version.version, Some(&b"h2"[..])));
    }
    // Shards publish their counts every second: scrape (over TLS) until they show.
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let scrape = negotiate(
            server.prometheus_addr(),
            &pki.ca_file,
            &[&rustls::version::TLS13],
            &[],
            Some("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        )
        .unwrap();
        assert!(scrape.answer.starts_with("HTTP/1.1 200 OK\r\n"), "{}", scrape.answer);
        if scrape.answer.contains("tls_handshakes_total{port=\"http\",result=\"ok\"} 2") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no handshake counts in:\n{}", scrape.answer);
        std::thread::sleep(Duration::from_millis(200));
    }

    // gRPC in cleartext beside a TLS HTTP port.
    let prefix = unique("tls-grpc-plain");
    let server = tls_server(&prefix, &cert, &[("SERVER_GRPC_TLS_ENABLED", "false")]);
    let reply = grpc_call(
        server.grpc_addr,
        "/raystack.raccoon.v1beta1.EventService/SendEvent",
        batch("plain-grpc", &prefix, &["plain"], 1),
        &[("x-user-id", "u")],
    )
    .expect("cleartext gRPC");
    assert_eq!(reply.status, pb::Status::Success as i32);
    assert!(negotiate(server.addr, &pki.ca_file, &[&rustls::version::TLS13], &[], None).is_ok());
}

/// A plain HTTP request, a plain WebSocket upgrade and plain gRPC on TLS ports are refused (the
/// HTTP ones with a 400 saying to use TLS) and counted by result.
#[test]
fn plain_clients_on_tls_ports_are_refused_and_counted() {
    let pki = TestPki::new("cleartext");
    let server = tls_server(&unique("tls-cleartext"), &pki.server("server", KeyKind::EcdsaP256), &[]);
    let answer = server.http("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(answer.contains("This port takes TLS only: use https:// or wss://."), "{answer}");
    let plain_ws = runtime().block_on(WsClient::builder(&server.ws_url()).reconnect_attempts(0).connect());
    assert!(plain_ws.is_err(), "a ws:// client cannot upgrade on a TLS port");
    let plain_grpc = runtime().block_on(async {
        GrpcClient::builder(&server.grpc_url())
            .retry(RetryPolicy::none())
            .build()?
            .send(vec![Event::new("t", "x")])
            .await
    });
    assert!(matches!(plain_grpc, Err(Error::Grpc { .. } | Error::Connect { .. })), "{plain_grpc:?}");
    scrape_until(
        &server,
        &[
            ("tls_handshakes_total{port=\"http\",result=\"cleartext\"}".into(), 2.0),
            ("tls_handshakes_total{port=\"grpc\",result=\"cleartext\"}".into(), 1.0),
        ],
        LIMIT,
    );
    assert!(!server.log().contains("TLS handshake failed"), "failed handshakes are logged at DEBUG only");
}

/// SIGHUP: a WebSocket opened before keeps working on its certificate; new connections get the
/// new one (trusted by the new CA only); a bad file on the next SIGHUP keeps the new one.
#[test]
fn sighup_reloads_the_certificate_for_new_connections() {
    let (old_ca, new_ca) = (TestPki::new("reload-old"), TestPki::new("reload-new"));
    let live = old_ca.server("live", KeyKind::EcdsaP256);
    let prefix = unique("tls-reload");
    let server = tls_server(&prefix, &live, &[]);
    let rt = runtime();
    let open = rt.block_on(async {
        let open = WsClient::builder(&wss(&server)).tls_ca_file(&old_ca.ca_file).connect().await.unwrap();
        open.send_and_wait(vec![Event::new("reload", "before")]).await.unwrap();
        open
    });

    let next = new_ca.server("next", KeyKind::EcdsaP256);
    std::fs::copy(&next.cert, &live.cert).unwrap();
    std::fs::copy(&next.key, &live.key).unwrap();
    server.reload();
    // One line per TLS port: HTTP and gRPC.
    server.wait_for_log("the reload", |log| log.matches("TLS certificate reloaded").count() >= 2);

    rt.block_on(async {
        let (_, reply) = open.send_and_wait(vec![Event::new("reload", "open")]).await.expect("the open connection");
        assert_eq!(reply.code, Code::Ok);
        let old = WsClient::builder(&wss(&server)).tls_ca_file(&old_ca.ca_file).reconnect_attempts(0).connect().await;
        let Err(error) = old else { panic!("the old CA does not sign the new certificate") };
        let error = error.to_string();
        assert!(error.contains("UnknownIssuer") || error.contains("BadSignature"), "{error}");
    });
    for outcome in send_each(&server, &new_ca.ca_file, "reload", "after") {
        assert!(matches!(outcome, Ok(Code::Ok)), "{outcome:?}");
    }

    std::fs::write(&live.key, "not a key").unwrap();
    server.reload();
    server.wait_for_log("the failed reload", |log| log.contains("TLS reload failed; the port keeps its certificate"));
    assert!(server.log().contains(&format!("SERVER_TLS_KEY_FILE {}", live.key.display())), "names the file");
    rt.block_on(async {
        let fresh =
            WsClient::builder(&wss(&server)).tls_ca_file(&new_ca.ca_file).connect().await.expect("still served");
        fresh.send_and_wait(vec![Event::new("reload", "kept")]).await.unwrap();
        fresh.close().await;
        open.close().await;
    });
    let got = consume(shared_kafka(), &format!("{prefix}-reload-log"), 6, CONSUME_LIMIT);
    let mut got: Vec<String> = got.into_iter().map(|r| String::from_utf8(r).unwrap()).collect();
    got.sort();
    assert_eq!(got, ["after", "after", "after", "before", "kept", "open"]);
}

/// An expired certificate, and one for another host, fail every client's handshake.
#[test]
fn clients_refuse_expired_and_wrong_host_certificates() {
    let pki = TestPki::new("refused");
    for (cert, why) in
        [(pki.expired("expired"), "certificate expired"), (pki.wrong_host("elsewhere"), "not valid for name")]
    {
        let server = tls_server(&unique("tls-refused"), &cert, &[]);
        for outcome in send_each(&server, &pki.ca_file, "refused", "x") {
            let error = outcome.expect_err("refused").to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
        // The clients say why they leave: an alert, counted as such.
        scrape_until(&server, &[("tls_handshakes_total{port=\"http\",result=\"alert\"}".into(), 2.0)], LIMIT);
    }
}

/// `SERVER_TLS_CLIENT_CA_FILE`: required, a client without a certificate fails the handshake on
/// every transport and one with a certificate the CA signed is served; optional, both are.
#[test]
fn mutual_tls_required_and_optional() {
    let pki = TestPki::new("mtls");
    let cert = pki.server("server", KeyKind::EcdsaP256);
    let partner = pki.client("partner", "partner-1");
    let other = TestPki::new("mtls-other");
    let stranger = other.client("stranger", "stranger");
    let ca = pki.ca_file.to_str().unwrap();
    for auth in ["required", "optional"] {
        let prefix = unique(&format!("tls-mtls-{auth}"));
        let server = tls_server(&prefix, &cert, &[("SERVER_TLS_CLIENT_CA_FILE", ca), ("SERVER_TLS_CLIENT_AUTH", auth)]);
        let rt = runtime();
        let with = |files: Option<&CertFiles>| {
            rt.block_on(async {
                let event = || vec![Event::new("mtls", auth.as_bytes().to_vec())];
                let mut ws = WsClient::builder(&wss(&server)).tls_ca_file(&pki.ca_file).reconnect_attempts(0);
                let mut rest = RestClient::builder(&https(server.addr)).tls_ca_file(&pki.ca_file);
                let mut grpc = GrpcClient::builder(&https(server.grpc_addr)).tls_ca_file(&pki.ca_file);
                if let Some(files) = files {
                    ws = ws.tls_client_cert(&files.cert, &files.key);
                    rest = rest.tls_client_cert(&files.cert, &files.key);
                    grpc = grpc.tls_client_cert(&files.cert, &files.key);
                }
                let ws = async {
                    let client = ws.connect().await?;
                    let sent = client.send_and_wait(event()).await;
                    client.close().await;
                    sent
                };
                let rest = async { rest.retry(RetryPolicy::none()).build()?.send(event()).await };
                let grpc = async { grpc.retry(RetryPolicy::none()).build()?.send(event()).await };
                let (ws, rest, grpc) = tokio::join!(ws, rest, grpc);
                [ws.is_ok(), rest.is_ok(), grpc.is_ok()]
            })
        };
        assert_eq!(with(Some(&partner)), [true; 3], "{auth}: a certificate the CA signed");
        assert_eq!(with(Some(&stranger)), [false; 3], "{auth}: a certificate another CA signed");
        let anonymous = auth == "optional";
        assert_eq!(with(None), [anonymous; 3], "{auth}: no certificate");
        // WebSocket and REST on the HTTP port, gRPC on its own: per client refused.
        let refused = if anonymous { 1.0 } else { 2.0 };
        scrape_until(
            &server,
            &[
                ("tls_handshakes_total{port=\"http\",result=\"certificate\"}".into(), 2.0 * refused),
                ("tls_handshakes_total{port=\"grpc\",result=\"certificate\"}".into(), refused),
            ],
            LIMIT,
        );
        let want = if anonymous { 6 } else { 3 };
        assert_eq!(consume(shared_kafka(), &format!("{prefix}-mtls-log"), want, CONSUME_LIMIT).len(), want);
    }
}

/// A missing file, a file without a certificate and a key that is not the certificate's stop
/// the start, with a message naming the key and the file.
#[test]
fn a_missing_or_bad_certificate_file_stops_the_start() {
    let pki = TestPki::new("startup");
    let good = pki.server("good", KeyKind::EcdsaP256);
    let other = pki.server("other", KeyKind::EcdsaP256);
    std::fs::write(pki.path("empty.pem"), "no certificate here\n").unwrap();
    let missing = pki.path("missing.pem");
    let cases = [
        (missing.clone(), good.key.clone(), format!("SERVER_TLS_CERT_FILE {}: cannot read", missing.display())),
        (
            pki.path("empty.pem"),
            good.key.clone(),
            format!("SERVER_TLS_CERT_FILE {}: no PEM certificate in it", pki.path("empty.pem").display()),
        ),
        (
            good.cert.clone(),
            other.key,
            format!("SERVER_TLS_CERT_FILE {} with SERVER_TLS_KEY_FILE", good.cert.display()),
        ),
    ];
    for (cert, key, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_raccoon"))
            .env_clear()
            .env("PUBLISHER_TYPE", "log")
            .env("SERVER_BIND_ADDRESS", "127.0.0.1")
            .env("SERVER_WEBSOCKET_PORT", "0")
            .env("SERVER_GRPC_PORT", "0")
            .env("SERVER_TLS_CERT_FILE", &cert)
            .env("SERVER_TLS_KEY_FILE", &key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{want}: started anyway");
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    }
}

/// A client that connects to a TLS port and never says hello does not hold up shutdown until
/// its handshake deadline: the drain drops it with the other HTTP connections.
#[test]
fn a_handshake_in_progress_does_not_hold_up_shutdown() {
    let pki = TestPki::new("shutdown");
    let mut server = tls_server(
        &unique("tls-shutdown"),
        &pki.server("server", KeyKind::EcdsaP256),
        &[("SERVER_HTTP_HEADER_TIMEOUT_MS", "60000")],
    );
    let silent = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let stopping = std::time::Instant::now();
    assert!(server.terminate().success());
    assert!(stopping.elapsed() < Duration::from_secs(10), "shutdown took {:?}", stopping.elapsed());
    assert!(!server.log().contains("still open at the drain deadline"), "{}", server.log());
    drop(silent);
}
