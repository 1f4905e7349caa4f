//! What one idle TLS connection holds in rustls, which decided how the server runs TLS
//! (`crates/rt/src/tls`): rustls' buffered `ServerConnection` (what `futures-rustls` wraps)
//! against its unbuffered `UnbufferedServerConnection` (what the server uses, with the shard's
//! scratch buffers), each after a full handshake and one request and answer, with TLS 1.3 and
//! 1.2. Heap bytes are counted by a counting allocator around the system's, over 2,000
//! connections kept alive at once; the struct's own size is added. Run with
//! `cargo bench --bench tls_memory`; figures in perf-results/2026-12-03-tls.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

#[allow(unsafe_code)]
// SAFETY: every call forwards to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: as the caller's contract for `alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: as the caller's contract for `dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Relaxed);
        // SAFETY: as the caller's contract for `realloc`.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONNECTIONS: usize = 2_000;
const REQUEST: &[u8] = b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n";
const ANSWER: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";

fn configs(
    version: &'static rustls::SupportedProtocolVersion,
) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
    let der = CertificateDer::from(cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], private)
        .unwrap();
    server.send_tls13_tickets = 0;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn client(config: &Arc<rustls::ClientConfig>) -> rustls::ClientConnection {
    rustls::ClientConnection::new(Arc::clone(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

fn buffered(server: &Arc<rustls::ServerConfig>, config: &Arc<rustls::ClientConfig>) -> rustls::ServerConnection {
    let mut s = rustls::ServerConnection::new(Arc::clone(server)).unwrap();
    let mut c = client(config);
    let mut wire = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        wire.clear();
        c.write_tls(&mut wire).unwrap();
        s.read_tls(&mut &wire[..]).unwrap();
        s.process_new_packets().unwrap();
        wire.clear();
        s.write_tls(&mut wire).unwrap();
        c.read_tls(&mut &wire[..]).unwrap();
        c.process_new_packets().unwrap();
    }
    c.writer().write_all(REQUEST).unwrap();
    wire.clear();
    c.write_tls(&mut wire).unwrap();
    s.read_tls(&mut &wire[..]).unwrap();
    s.process_new_packets().unwrap();
    let mut got = [0u8; 128];
    assert_eq!(s.reader().read(&mut got).unwrap(), REQUEST.len());
    s.writer().write_all(ANSWER).unwrap();
    wire.clear();
    s.write_tls(&mut wire).unwrap();
    s
}

fn unbuffered(server: &Arc<rustls::ServerConfig>, config: &Arc<rustls::ClientConfig>) -> UnbufferedServerConnection {
    let mut s = UnbufferedServerConnection::new(Arc::clone(server)).unwrap();
    let mut c = client(config);
    c.writer().write_all(REQUEST).unwrap();
    let (mut incoming, mut outgoing) = (Vec::new(), vec![0u8; 32 * 1024]);
    let (mut got_request, mut answered) = (false, false);
    while !answered {
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        incoming.extend_from_slice(&wire);
        loop {
            let UnbufferedStatus { mut discard, state } = s.process_tls_records(&mut incoming);
            let (mut sent, mut blocked) = (0, false);
            match state.unwrap() {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.unwrap();
                        discard += record.discard;
                        got_request = record.payload == REQUEST;
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => sent = encode.encode(&mut outgoing).unwrap(),
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::WriteTraffic(mut traffic) if got_request && !answered => {
                    sent = traffic.encrypt(ANSWER, &mut outgoing).unwrap();
                    answered = true;
                }
                _ => blocked = true,
            }
            incoming.drain(..discard);
            if sent > 0 {
                c.read_tls(&mut &outgoing[..sent]).unwrap();
                c.process_new_packets().unwrap();
            }
            if blocked {
                break;
            }
        }
    }
    s
}

fn per_connection<T>(make: impl Fn() -> T) -> usize {
    let mut kept = Vec::with_capacity(CONNECTIONS);
    let before = LIVE.load(Relaxed);
    for _ in 0..CONNECTIONS {
        kept.push(make());
    }
    let heap = (LIVE.load(Relaxed) - before) as usize / CONNECTIONS;
    drop(kept);
    // The vector holds the structs themselves: heap already counts them.
    heap
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    for (name, version) in [("TLS 1.3", &rustls::version::TLS13), ("TLS 1.2", &rustls::version::TLS12)] {
        let (server, client) = configs(version);
        let b = per_connection(|| buffered(&server, &client));
        let u = per_connection(|| unbuffered(&server, &client));
        println!(
            "{name}: buffered ServerConnection {b} B per idle connection ({} B struct); unbuffered {u} B ({} B struct)",
            std::mem::size_of::<rustls::ServerConnection>(),
            std::mem::size_of::<UnbufferedServerConnection>()
        );
    }
}
