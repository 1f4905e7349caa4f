//! Sends one batch over REST as JSON and prints the reply.
//!
//! Run against a local server: `cargo run -p raccoon-client --example rest [http://127.0.0.1:8080]`

use raccoon_client::{App, Encoding, Event, RestClient};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let client = RestClient::builder(&url)
        .encoding(Encoding::Json)
        .app(&App { id: "example-1".into(), name: "rest-example".into(), version: "1.0".into() })
        .build()?;
    // Event data: raw bytes, or a value through the built-in JSON serializer.
    let events = vec![Event::new("page", "hello"), Event::json("click", &serde_json::json!({"button": "buy"}))?];
    let (req_guid, response) = client.send(events).await?;
    println!("{req_guid}: {:?} {:?}", response.status, response.code);
    Ok(())
}
