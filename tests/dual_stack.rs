//! Address families, against the real binary and the real Kafka: by default every port (HTTP:
//! WebSocket, REST, `/ping`; gRPC; Prometheus) takes IPv4 and IPv6 clients on one socket, in both
//! ack modes, and every event sent from either family is read back; `SERVER_BIND_ADDRESS`
//! pins one family. Only loopback addresses (127.0.0.1, ::1) are used.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};

use common::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// `addr`'s port on `ip`.
fn at(ip: IpAddr, addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(ip, addr.port())
}

fn every_transport_from_both_families(event_ack: &str) {
    let kafka = shared_kafka();
    let prefix = unique(&format!("dual-ack{event_ack}"));
    let server = start_server(
        kafka,
        &[
            ("SERVER_BIND_ADDRESS", ""),
            ("EVENT_ACK", event_ack),
            ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN", &format!("{prefix}-%s-log")),
            ("METRIC_PROMETHEUS_ENABLED", "true"),
            ("METRIC_PROMETHEUS_PORT", "0"),
        ],
    );
    assert_eq!(server.addr.ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED), "the default binds [::]");
    assert!(!server.log().contains("IPv4 only"), "this host has IPv6: no fallback\n{}", server.log());
    let mut sent = Vec::new();
    for (family, ip) in [("v4", V4), ("v6", V6)] {
        let ws_batch = batch(&format!("ws-{family}"), &prefix, &["ws"], 3);
        let mut ws = Client::connect(at(ip, server.addr), &[("X-User-ID", family)]);
        ws.send_batch(&ws_batch);
        assert_success(&ws.reply(), &ws_batch.req_guid);
        ws.close();

        let rest_batch = batch(&format!("rest-{family}"), &prefix, &["rest"], 2);
        let (status, reply) = rest_post(at(ip, server.addr), &rest_batch, &[]);
        assert_eq!(status, 200, "REST over {family}");
        assert_success(&reply, &rest_batch.req_guid);

        let grpc_batch = batch(&format!("grpc-{family}"), &prefix, &["grpc"], 2);
        let path = "/raystack.raccoon.v1beta1.EventService/SendEvent";
        let reply = grpc_call(at(ip, server.grpc_addr), path, grpc_batch.clone(), &[("x-user-id", family)])
            .unwrap_or_else(|e| panic!("gRPC over {family}: {e}"));
        assert_success(&reply, &grpc_batch.req_guid);

        assert_eq!(get_from(at(ip, server.addr), "/ping"), (200, "pong".to_owned()), "/ping over {family}");
        let (status, metrics) = get_from(at(ip, server.prometheus_addr()), "/metrics");
        assert_eq!(status, 200, "Prometheus over {family}");
        assert!(metrics.contains("process_resident_memory_bytes"), "{metrics}");
        sent.extend([ws_batch, rest_batch, grpc_batch]);
    }
    assert_topics_hold(kafka, &expected_by_topic(&prefix, &sent));
}

#[test]
fn every_transport_takes_both_families_when_acking_on_receipt() {
    every_transport_from_both_families("0");
}

#[test]
fn every_transport_takes_both_families_when_acking_on_delivery() {
    every_transport_from_both_families("1");
}

/// An address pins its family on every port: `0.0.0.0` refuses IPv6 clients, `::` IPv4 ones.
#[test]
fn a_bind_address_pins_one_family() {
    for (bind, served, refused) in [("0.0.0.0", V4, V6), ("::", V6, V4)] {
        let server = start_server(
            shared_kafka(),
            &[("SERVER_BIND_ADDRESS", bind), ("METRIC_PROMETHEUS_ENABLED", "true"), ("METRIC_PROMETHEUS_PORT", "0")],
        );
        for (port, addr) in
            [("HTTP", server.addr), ("gRPC", server.grpc_addr), ("Prometheus", server.prometheus_addr())]
        {
            assert!(TcpStream::connect(at(served, addr)).is_ok(), "{bind}: {port} over {served}");
            let error = TcpStream::connect(at(refused, addr)).expect_err("the other family is not served");
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{bind}: {port} over {refused}");
        }
        assert_eq!(get_from(at(served, server.addr), "/ping").0, 200);
    }
}
