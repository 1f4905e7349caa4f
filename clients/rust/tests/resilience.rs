//! Retries, reconnects, an unread ack stream and refusals, against the real server and Kafka.

mod common;

use std::time::Duration;

use common::*;
use raccoon_client::{Batch, Code, Error, Event, GrpcClient, RestClient, RetryPolicy, WsClient};

const LIMIT: Duration = Duration::from_secs(60);

fn patient() -> RetryPolicy {
    RetryPolicy {
        max_retries: 50,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(300),
    }
}

/// Starts a server on fixed ports (`env` names them) on a blocking thread, so that the test's
/// runtime, and the clients on it, keep running meanwhile.
async fn start_on_fixed_ports(env: Vec<(String, String)>) -> TestServer {
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        start_server(&env)
    })
    .await
    .expect("start the server")
}

/// Resolves once `holds` does (polled; the caller bounds the wait).
async fn until(holds: impl Fn() -> bool) {
    while !holds() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// REST and gRPC: a batch sent while nobody listens is retried with its req_guid until the
/// server is up, and lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_the_req_guid_until_the_server_answers() {
    let prefix = unique("retry");
    let [http_port, grpc_port] = free_ports::<2>();
    let rest = RestClient::builder(&format!("http://127.0.0.1:{http_port}")).retry(patient()).build().unwrap();
    let grpc = GrpcClient::builder(&format!("http://127.0.0.1:{grpc_port}")).retry(patient()).build().unwrap();
    let rest_batch = Batch::new([Event::new("rest", "r-1")]).with_req_guid("retry-rest-guid");
    let grpc_batch = Batch::new([Event::new("grpc", "g-1")]);
    let grpc_guid = grpc_batch.req_guid().to_owned();
    let env = vec![
        ("SERVER_WEBSOCKET_PORT".to_owned(), http_port.to_string()),
        ("SERVER_GRPC_PORT".to_owned(), grpc_port.to_string()),
        ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN".to_owned(), format!("{prefix}-%s-log")),
    ];
    // The server starts once both clients have failed to reach it, so both batches are retried.
    let server = async {
        until(|| rest.stats().conn_errors >= 1 && grpc.stats().conn_errors >= 1).await;
        start_on_fixed_ports(env).await
    };
    let (r, g, _server) =
        tokio::time::timeout(LIMIT, async { tokio::join!(rest.send(rest_batch), grpc.send(grpc_batch), server) })
            .await
            .expect("both sends end within the limit");
    let (guid, response) = r.unwrap();
    assert_eq!((guid.as_str(), response.req_guid()), ("retry-rest-guid", Some("retry-rest-guid")));
    let (guid, response) = g.unwrap();
    assert_eq!((guid.as_str(), response.req_guid()), (grpc_guid.as_str(), Some(grpc_guid.as_str())));
    for stats in [rest.stats(), grpc.stats()] {
        assert!(stats.retries >= 1, "{stats:?}");
        assert!(stats.conn_errors >= 1, "{stats:?}");
        assert_eq!((stats.batches_sent, stats.batches_acked), (1, 1), "{stats:?}");
    }
    tokio::task::spawn_blocking(move || {
        assert_topic_holds(&format!("{prefix}-rest-log"), &[b"r-1".to_vec()]);
        assert_topic_holds(&format!("{prefix}-grpc-log"), &[b"g-1".to_vec()]);
    })
    .await
    .unwrap();
}

/// WebSocket: the server stops (closing with 1001) and comes back on the same port; the
/// client reconnects by itself and a batch sent meanwhile lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_reconnects_after_the_server_restarts() {
    let prefix = unique("reconnect");
    let port = free_port();
    let env = vec![
        ("SERVER_WEBSOCKET_PORT".to_owned(), port.to_string()),
        ("EVENT_DISTRIBUTION_PUBLISHER_PATTERN".to_owned(), format!("{prefix}-%s-log")),
    ];
    let mut first = start_on_fixed_ports(env.clone()).await;
    let ws = WsClient::builder(&format!("ws://127.0.0.1:{port}"))
        .retry(patient())
        .reconnect_attempts(50)
        .connect()
        .await
        .unwrap();
    ws.send_and_wait(Event::new("ws", "before")).await.unwrap();
    tokio::task::block_in_place(|| first.terminate());
    // The batch goes while nobody listens; the server comes back once the client has tried to
    // reconnect and failed (the lost connection counts one error, each failed attempt one more).
    let second = async {
        until(|| ws.stats().conn_errors >= 2).await;
        start_on_fixed_ports(env).await
    };
    let (during, _second) =
        tokio::time::timeout(LIMIT, async { tokio::join!(ws.send_and_wait(Event::new("ws", "during")), second) })
            .await
            .expect("the batch is answered within the limit");
    let (guid, response) = during.unwrap();
    assert_eq!(response.req_guid(), Some(guid.as_str()));
    ws.send_and_wait(Event::new("ws", "after")).await.unwrap();
    let stats = ws.stats();
    assert!(stats.reconnects >= 1 && stats.conn_errors >= 1, "{stats:?}");
    assert_eq!((stats.batches_sent, stats.batches_acked, stats.batches_failed), (3, 3, 0), "{stats:?}");
    tokio::task::spawn_blocking(move || {
        assert_topic_holds(&format!("{prefix}-ws-log"), &[b"before".to_vec(), b"during".to_vec(), b"after".to_vec()])
    })
    .await
    .unwrap();
}

/// A subscriber that never reads: the connection goes on, the acks beyond the buffer are
/// dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_ack_stream_never_stalls_the_connection() {
    let server = start_server(&[]);
    let ws = WsClient::builder(&server.ws_url()).connect().await.unwrap();
    let mut acks = ws.subscribe(4);
    for i in 0..40 {
        ws.send(Event::new("unread", format!("e{i}"))).await.unwrap();
    }
    tokio::time::timeout(LIMIT, async {
        while ws.stats().batches_acked < 40 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every batch is answered although nobody reads the acks");
    assert_eq!(ws.stats().acks_dropped, 36);
    let (_, response) = ws.send_and_wait(Event::new("unread", "last")).await.unwrap();
    assert!(response.is_success());
    let mut buffered = 0;
    while let Some(ack) = acks.try_recv() {
        assert!(ack.result.is_ok());
        buffered += 1;
    }
    assert_eq!(buffered, 4);
    assert_eq!(ws.stats().acks_dropped, 37);
}

/// Codes 4 (connection limit) and 5 (duplicate user id) are errors, and end the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_with_codes_4_and_5_are_errors() {
    for (env, code) in [
        (vec![("SERVER_WEBSOCKET_MAX_CONN", "1")], Code::MaxConnectionLimitReached),
        (vec![], Code::MaxUserLimitReached),
    ] {
        let server = start_server(&env);
        let first = WsClient::builder(&server.ws_url()).user_id("same-user").connect().await.unwrap();
        first.send_and_wait(Event::new("refusal", "first")).await.unwrap();
        let second = WsClient::builder(&server.ws_url()).user_id("same-user").connect().await.unwrap();
        let err = tokio::time::timeout(LIMIT, second.send_and_wait(Event::new("refusal", "second")))
            .await
            .expect("an outcome within the limit")
            .unwrap_err();
        assert!(matches!(&err, Error::Rejected { code: c, .. } if *c == code), "{code:?}: {err}");
        assert!(!err.is_retryable());
        assert!(matches!(second.send(Event::new("refusal", "third")).await, Err(Error::Rejected { .. })));
        assert_eq!(second.stats().reconnects, 0);
        // The first connection is unaffected.
        first.send_and_wait(Event::new("refusal", "again")).await.unwrap();
    }
}
