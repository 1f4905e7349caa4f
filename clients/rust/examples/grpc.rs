//! Sends one batch over gRPC with a req_guid of the caller's and a protobuf event.
//!
//! Run against a local server: `cargo run -p raccoon-client --example grpc [http://127.0.0.1:8081]`

use raccoon_client::{Batch, Event, GrpcClient};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:8081".into());
    let client = GrpcClient::builder(&url).build()?;
    let now = prost_types::Timestamp { seconds: 1_796_117_400, nanos: 0 };
    let batch = Batch::new([Event::protobuf("heartbeat", &now)]).with_req_guid("example-batch-1");
    match client.send(batch).await {
        Ok((req_guid, response)) => println!("{req_guid}: {:?}", response.code),
        Err(e) => eprintln!("failed: {e} (retryable: {})", e.is_retryable()),
    }
    Ok(())
}
