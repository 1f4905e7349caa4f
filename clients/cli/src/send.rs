//! `raccoon-cli send`: builds a batch from the command line or stdin, sends it over the chosen
//! transport and prints the reply, readable or as JSON (`--json`).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::tls::{with_tls, TlsArgs};
use clap::{Args, ValueEnum};
use raccoon_client::{Batch, Encoding, Error, Event, GrpcClient, Response, RestClient, RetryPolicy, WsClient};

/// The transports `--transport` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// WebSocket, `/api/v1/events` on the HTTP port.
    Ws,
    /// `POST /api/v1/events` on the HTTP port.
    Rest,
    /// `EventService/SendEvent` on the gRPC port.
    Grpc,
}

/// The encodings `--encoding` takes: the client library's [`Encoding`]s, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EncodingArg {
    /// Protobuf (WebSocket binary frames, `application/proto`; the only one over gRPC).
    Proto,
    /// JSON (WebSocket text frames, `application/json`).
    Json,
}

/// `send`'s options.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The events' type (the server routes it to a topic, e.g. `clickstream-page-log`).
    #[arg(long = "type", short = 't', default_value = "page")]
    event_type: String,
    /// An event's data as text; repeat for several events. Without --data, --json-data or
    /// --file, each non-empty line of stdin is one event.
    #[arg(long, short = 'd')]
    data: Vec<String>,
    /// An event's data as JSON, checked and sent compact; repeatable.
    #[arg(long)]
    json_data: Vec<String>,
    /// A file whose bytes are one event; repeatable.
    #[arg(long, short = 'f')]
    file: Vec<PathBuf>,
    /// The transport.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    transport: Transport,
    /// The request's encoding (gRPC: proto only).
    #[arg(long, short = 'e', value_enum, default_value_t = EncodingArg::Proto)]
    encoding: EncodingArg,
    /// The server, `host:port` or a URL (default 127.0.0.1:8080, or 127.0.0.1:8081 for gRPC).
    #[arg(long, short = 'a')]
    addr: Option<String>,
    /// An extra header, `Name: value`; repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// The user id (X-User-ID); default a fresh UUID.
    #[arg(long)]
    user_id: Option<String>,
    /// The batch's req_guid; default a fresh UUID.
    #[arg(long)]
    req_guid: Option<String>,
    /// How long to wait for the reply, in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Retries on transport errors and retryable codes.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Print the outcome as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

impl SendArgs {
    fn events(&self) -> Result<Vec<Event>, String> {
        let mut events: Vec<Event> = self.data.iter().map(|d| Event::new(&self.event_type, d.clone())).collect();
        for j in &self.json_data {
            let value: serde_json::Value = serde_json::from_str(j).map_err(|e| format!("--json-data {j:?}: {e}"))?;
            events.push(Event::json(&self.event_type, &value).map_err(|e| e.to_string())?);
        }
        for f in &self.file {
            let bytes = std::fs::read(f).map_err(|e| format!("--file {}: {e}", f.display()))?;
            events.push(Event::new(&self.event_type, bytes));
        }
        if events.is_empty() {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map_err(|e| format!("reading stdin: {e}"))?;
            events = input
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| Event::new(&self.event_type, l.to_owned()))
                .collect();
            if events.is_empty() {
                return Err("no events: give --data, --json-data or --file, or lines on stdin".into());
            }
        }
        Ok(events)
    }

    fn url(&self) -> String {
        server_url(self.transport, self.addr.as_deref(), self.tls.secure(self.addr.as_deref()))
    }
}

/// The URL of the server at `addr` (`host:port` or a URL; default 127.0.0.1:8080, or
/// 127.0.0.1:8081 for gRPC) for `transport`, over TLS when `secure`.
pub(crate) fn server_url(transport: Transport, addr: Option<&str>, secure: bool) -> String {
    let port = if transport == Transport::Grpc { 8081 } else { 8080 };
    let scheme = match (transport, secure) {
        (Transport::Ws, false) => "ws",
        (Transport::Ws, true) => "wss",
        (_, false) => "http",
        (_, true) => "https",
    };
    let addr = addr.map_or_else(|| format!("127.0.0.1:{port}"), str::to_owned);
    match addr.split_once("://") {
        Some((_, rest)) => format!("{scheme}://{rest}"),
        None => format!("{scheme}://{addr}"),
    }
}

impl Transport {
    /// `ws`, `rest` or `grpc`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Rest => "rest",
            Transport::Grpc => "grpc",
        }
    }
}

impl EncodingArg {
    /// The client library's encoding.
    pub(crate) fn encoding(self) -> Encoding {
        match self {
            EncodingArg::Proto => Encoding::Proto,
            EncodingArg::Json => Encoding::Json,
        }
    }

    /// `proto` or `json`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EncodingArg::Proto => "proto",
            EncodingArg::Json => "json",
        }
    }
}

/// Sets the settings every transport's builder has.
macro_rules! configure {
    ($builder:expr, $args:expr, $headers:expr) => {{
        let mut b = $builder
            .timeout(Duration::from_secs_f64($args.timeout))
            .connect_timeout(Duration::from_secs_f64($args.timeout))
            .retry(RetryPolicy { max_retries: $args.retries, ..RetryPolicy::default() });
        for (name, value) in $headers {
            b = b.header(name, value);
        }
        if let Some(id) = &$args.user_id {
            b = b.user_id(id);
        }
        with_tls!(b, &$args.tls)
    }};
}

/// Runs `send`: one batch, the reply printed; the exit status as `raccoon-cli send --help`
/// describes it.
pub async fn run(args: SendArgs) -> ExitCode {
    let usage = |why: String| {
        eprintln!("error: {why}");
        ExitCode::from(2)
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        match h.split_once(':') {
            Some((n, v)) => headers.push((n.trim(), v.trim())),
            None => return usage(format!("--header {h:?} is not `Name: value`")),
        }
    }
    if args.transport == Transport::Grpc && args.encoding == EncodingArg::Json {
        return usage("gRPC carries protobuf only: drop --encoding json".into());
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return usage(format!("--timeout {} is not a positive number of seconds", args.timeout));
    }
    let events = match args.events() {
        Ok(e) => e,
        Err(why) => return usage(why),
    };
    let count = events.len();
    let mut batch = Batch::new(events);
    if let Some(g) = &args.req_guid {
        batch = batch.with_req_guid(g.clone());
    }
    let encoding = args.encoding.encoding();
    let guid = batch.req_guid().to_owned();
    let url = args.url();
    let started = Instant::now();
    let outcome = match args.transport {
        Transport::Rest => match configure!(RestClient::builder(&url), args, &headers).encoding(encoding).build() {
            Ok(c) => c.send(batch).await,
            Err(e) => Err(e),
        },
        Transport::Grpc => match configure!(GrpcClient::builder(&url), args, &headers).build() {
            Ok(c) => c.send(batch).await,
            Err(e) => Err(e),
        },
        Transport::Ws => {
            match configure!(WsClient::builder(&url), args, &headers)
                .encoding(encoding)
                .reconnect_attempts(args.retries)
                .connect()
                .await
            {
                Ok(c) => {
                    let r = c.send_and_wait(batch).await;
                    c.close().await;
                    r
                }
                Err(e) => Err(e),
            }
        }
    };
    let elapsed = started.elapsed();
    let (transport, encoding) = (args.transport.name(), args.encoding.name());
    match outcome {
        Ok((req_guid, response)) => {
            if args.json {
                println!("{}", json_outcome(&req_guid, Some(&response), None, transport, encoding, count, elapsed));
            } else {
                println!(
                    "sent {count} event(s) of type {:?} over {transport} ({encoding}) to {url}\nreq_guid {req_guid}: {} in {:.1} ms",
                    args.event_type,
                    describe(&response),
                    elapsed.as_secs_f64() * 1000.0
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            let response = match &error {
                Error::Reply { response, .. } => Some(&**response),
                _ => None,
            };
            if args.json {
                println!("{}", json_outcome(&guid, response, Some(&error), transport, encoding, count, elapsed));
            }
            eprintln!("error: {error}");
            match error {
                Error::Reply { .. } | Error::Rejected { .. } => ExitCode::from(1),
                Error::Config(_) => ExitCode::from(2),
                _ => ExitCode::from(3),
            }
        }
    }
}

/// `STATUS_SUCCESS, CODE_OK (1), server time 1796117400` and the reason, if any.
fn describe(r: &Response) -> String {
    let mut s = format!(
        "{}, {} ({}), server time {}",
        r.status.as_str_name(),
        r.code.as_str_name(),
        r.code as i32,
        r.sent_time
    );
    if !r.reason.is_empty() {
        s.push_str(&format!(", reason {:?}", r.reason));
    }
    s
}

fn json_outcome(
    req_guid: &str,
    response: Option<&Response>,
    error: Option<&Error>,
    transport: &str,
    encoding: &str,
    events: usize,
    elapsed: Duration,
) -> serde_json::Value {
    let mut out = serde_json::json!({
        "ok": error.is_none(),
        "req_guid": req_guid,
        "transport": transport,
        "encoding": encoding,
        "events": events,
        "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
    });
    if let Some(r) = response {
        out["response"] = serde_json::json!({
            "status": r.status as i32,
            "code": r.code as i32,
            "sent_time": r.sent_time,
            "reason": r.reason,
            "data": r.data,
        });
    }
    if let Some(e) = error {
        out["error"] = serde_json::Value::String(e.to_string());
        if let Some(code) = e.code() {
            out["code"] = serde_json::json!(code as i32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_takes_proto_and_json_and_maps_them_to_the_clients_names() {
        let names: Vec<_> = EncodingArg::value_variants()
            .iter()
            .filter_map(|e| e.to_possible_value())
            .map(|v| v.get_name().to_owned())
            .collect();
        assert_eq!(names, ["proto", "json"]);
        for e in EncodingArg::value_variants() {
            assert_eq!(e.name(), e.to_possible_value().unwrap().get_name());
        }
        assert_eq!((EncodingArg::Proto.encoding(), EncodingArg::Json.encoding()), (Encoding::Proto, Encoding::Json));
    }
}
