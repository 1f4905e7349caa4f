//! Sends batches over one WebSocket and reads their acks from the ack stream; a custom
//! serializer (a closure) makes the event bytes, and StatsD statistics go to 127.0.0.1:8125.
//!
//! Run against a local server: `cargo run -p raccoon-client --example websocket [ws://127.0.0.1:8080]`

use std::time::Duration;

use raccoon_client::{Event, WsClient};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let client = WsClient::builder(&url)
        .user_id("example-user")
        .ping_interval(Duration::from_secs(5))
        .statsd("127.0.0.1:8125", "raccoon.example")
        .connect()
        .await?;
    let mut acks = client.subscribe(64);
    let csv = |(page, ms): &(&str, u32)| Ok::<_, std::fmt::Error>(format!("{page},{ms}").into_bytes());
    for (i, page) in ["home", "cart", "checkout"].into_iter().enumerate() {
        let event = Event::serialize("page", &(page, 100 * i as u32), &csv)?;
        let req_guid = client.send(vec![event]).await?;
        println!("sent {req_guid}");
    }
    for _ in 0..3 {
        let Ok(Some(ack)) = tokio::time::timeout(Duration::from_secs(10), acks.recv()).await else { break };
        match ack.result {
            Ok(r) => println!("ack {} after {:?}: {:?}", ack.req_guid, ack.latency, r.code),
            Err(e) => println!("batch {} failed: {e}", ack.req_guid),
        }
    }
    println!("{:?}", client.stats());
    client.close().await;
    Ok(())
}
