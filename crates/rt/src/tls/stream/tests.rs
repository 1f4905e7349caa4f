//! The stream against rustls' own client over real loopback sockets: handshakes in both
//! versions, records cut at every size, writes larger than the scratch, close_notify, the
//! cleartext answer, deadlines, mTLS and reloads.

use std::io::{Read, Write};
use std::net::{TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use glommio::{LocalExecutorBuilder, Placement};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::*;
use crate::tls::{ClientAuth, ServerTls, TlsSource};

/// A CA, a server certificate for `localhost` and a client certificate it signed, as PEM files
/// in a directory of their own.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    client: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

impl Pki {
    fn new(alg: &'static rcgen::SignatureAlgorithm) -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "raccoon-rt-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate_for(alg).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issue = |names: Vec<String>| {
            let key = KeyPair::generate_for(alg).unwrap();
            let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
            (cert, key)
        };
        let (server, server_key) = issue(vec!["localhost".into()]);
        let (client, client_key) = issue(vec!["partner".into()]);
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca: ca.der().clone(),
            client: (client.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der()))),
        }
    }

    fn source(&self, client_ca: Option<ClientAuth>) -> TlsSource {
        TlsSource {
            cert_file: self.dir.join("server.pem"),
            key_file: self.dir.join("server.key"),
            client_ca_file: client_ca.map(|_| self.dir.join("ca.pem")),
            client_auth: client_ca.unwrap_or(ClientAuth::Required),
            keys: ["CERT", "KEY", "CA"],
        }
    }

    fn client(&self, version: &'static rustls::SupportedProtocolVersion, with_cert: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(if with_cert {
            builder.with_client_auth_cert(vec![self.client.0.clone()], self.client.1.clone_key()).unwrap()
        } else {
            builder.with_no_client_auth()
        })
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `server` on one connection accepted on a glommio executor, and `client` against it on
/// this thread; returns both results.
fn run<S, F, T, R>(server: S, client: impl FnOnce(u16) -> R) -> (T, R)
where
    S: FnOnce(TcpStream, Rc<TlsScratch>) -> F + Send + 'static,
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(move || async move {
            let listener = crate::adopt(listener);
            let tcp = listener.accept().await.unwrap();
            server(tcp, TlsScratch::new()).await
        })
        .unwrap();
    let client = client(port);
    (handle.join().unwrap(), client)
}

const DEADLINE: Duration = Duration::from_secs(5);

fn connect(
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, StdTcpStream> {
    let tcp = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads what the client sends until it closes, through `poll_read_with`, and echoes it back
/// through `AsyncWrite`; ends with close_notify. Returns the bytes echoed.
async fn echo(tcp: TcpStream, scratch: Rc<TlsScratch>, tls: Arc<ServerTls>) -> Result<usize, String> {
    let mut stream = accept(tcp, tls.config(), scratch, DEADLINE).await.map_err(|e| e.to_string())?;
    let mut total = 0;
    loop {
        let mut got = Vec::new();
        let n = poll_fn(|cx| stream.poll_read_with(cx, &mut |plain| got.extend_from_slice(plain)))
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(n, got.len());
        if n == 0 {
            break;
        }
        total += n;
        stream.write_all(&got).await.map_err(|e| e.to_string())?;
    }
    stream.close().await.map_err(|e| e.to_string())?;
    Ok(total)
}

/// A pattern that shows misplaced or lost bytes.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn echoes_through_both_versions_with_records_cut_anywhere() {
    for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let pki = Pki::new(alg);
            let tls = Arc::new(ServerTls::load(pki.source(None), &[b"http/1.1"]).unwrap());
            let client = pki.client(version, false);
            // Larger than both scratch buffers, sent in pieces of every size from 1 byte (a record
            // per piece: TCP_NODELAY, one flush each), so records arrive cut across reads.
            let data = payload(300 * 1024);
            let expected = data.len();
            let ((echoed, _), received) = run(
                move |tcp, scratch| async move { (echo(tcp, scratch, tls).await, ()) },
                move |port| {
                    let mut stream = connect(port, client);
                    let mut received = Vec::new();
                    let mut at = 0;
                    let mut piece = 1;
                    while at < data.len() {
                        let end = (at + piece).min(data.len());
                        stream.write_all(&data[at..end]).unwrap();
                        stream.flush().unwrap();
                        at = end;
                        piece = (piece * 3 + 1) % 40_000 + 1;
                        // Read the echo as it comes, so neither side's buffers fill.
                        while received.len() + 20_000 < at {
                            let mut buf = [0u8; 16 * 1024];
                            let n = stream.read(&mut buf).unwrap();
                            received.extend_from_slice(&buf[..n]);
                        }
                    }
                    stream.conn.send_close_notify();
                    stream.flush().unwrap();
                    // A clean end: the server's close_notify, not a cut connection.
                    stream.read_to_end(&mut received).expect("close_notify ends the echo");
                    received
                },
            );
            assert_eq!(echoed, Ok(expected), "{alg:?} {version:?}");
            assert!(received == payload(expected), "{alg:?} {version:?}: echo differs ({} bytes)", received.len());
        }
    }
}

/// hyper's path: `AsyncRead` into buffers smaller than a record keeps the rest for the next read.
#[test]
fn async_read_into_small_buffers_loses_nothing() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = Arc::new(ServerTls::load(pki.source(None), &[]).unwrap());
    let client = pki.client(&rustls::version::TLS13, false);
    let data = payload(100_000);
    let sent = data.clone();
    let (read, ()) = run(
        move |tcp, scratch| async move {
            let mut stream = accept(tcp, tls.config(), scratch, DEADLINE).await.unwrap();
            let mut all = Vec::new();
            let mut buf = [0u8; 100];
            loop {
                let n = futures_lite::AsyncReadExt::read(&mut stream, &mut buf).await.unwrap();
                if n == 0 {
                    break all;
                }
                all.extend_from_slice(&buf[..n]);
            }
        },
        move |port| {
            let mut stream = connect(port, client);
            stream.write_all(&sent).unwrap();
            stream.conn.send_close_notify();
            stream.flush().unwrap();
            // Until the server is done: closing with its session ticket unread would reset.
            let _ = stream.read_to_end(&mut Vec::new());
        },
    );
    assert!(read == data, "read {} bytes", read.len());
}

#[test]
fn a_plain_http_request_is_told_to_use_tls() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = Arc::new(ServerTls::load(pki.source(None), &[]).unwrap());
    let (error, answer) = run(
        move |tcp, scratch| async move { accept(tcp, tls.config(), scratch, DEADLINE).await.err().map(|e| e.reason()) },
        |port| {
            let mut tcp = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut answer = String::new();
            tcp.read_to_string(&mut answer).unwrap();
            answer
        },
    );
    assert_eq!(error, Some("cleartext"));
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(answer.ends_with("This port takes TLS only: use https:// or wss://.\n"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    assert!(answer.contains(&format!("Content-Length: {}\r\n", body.len())), "{answer}");
}

#[test]
fn a_silent_client_times_out_and_a_leaving_one_is_closed() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = Arc::new(ServerTls::load(pki.source(None), &[]).unwrap());
    let config = Arc::clone(&tls);
    let (reason, ()) = run(
        move |tcp, scratch| async move {
            let started = std::time::Instant::now();
            let reason =
                accept(tcp, config.config(), scratch, Duration::from_millis(200)).await.err().map(|e| e.reason());
            (reason, started.elapsed())
        },
        |port| {
            let tcp = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_millis(600));
            drop(tcp);
        },
    );
    assert_eq!(reason.0, Some("timeout"));
    assert!(reason.1 < Duration::from_millis(550), "{:?}", reason.1);
    // Half a ClientHello, then gone.
    let (reason, ()) = run(
        move |tcp, scratch| async move { accept(tcp, tls.config(), scratch, DEADLINE).await.err().map(|e| e.reason()) },
        |port| {
            let mut tcp = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.write_all(&[HANDSHAKE_RECORD, 3, 1, 0, 200, 1]).unwrap();
        },
    );
    assert_eq!(reason, Some("closed"));
}

#[test]
fn client_certificates_are_required_or_optional() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    for (auth, with_cert, accepted) in [
        (ClientAuth::Required, true, true),
        (ClientAuth::Required, false, false),
        (ClientAuth::Optional, false, true),
        (ClientAuth::Optional, true, true),
    ] {
        let tls = Arc::new(ServerTls::load(pki.source(Some(auth)), &[]).unwrap());
        let client = pki.client(&rustls::version::TLS13, with_cert);
        let (outcome, client_saw) = run(
            move |tcp, scratch| async move {
                match accept(tcp, tls.config(), scratch, DEADLINE).await {
                    Ok(mut stream) => {
                        let presented = stream.peer_certificates().map_or(0, <[_]>::len);
                        stream.write_all(b"ok").await.unwrap();
                        stream.close().await.unwrap();
                        Ok(presented)
                    }
                    Err(error) => Err(error.reason()),
                }
            },
            move |port| {
                let mut stream = connect(port, client);
                let mut got = Vec::new();
                stream.read_to_end(&mut got).map(|_| got).map_err(|e| e.to_string())
            },
        );
        if accepted {
            assert_eq!(outcome, Ok(usize::from(with_cert)), "{auth:?} cert={with_cert}");
            assert_eq!(client_saw.as_deref(), Ok(&b"ok"[..]));
        } else {
            assert_eq!(outcome, Err("certificate"), "{auth:?} cert={with_cert}");
            // The client hears why: rustls' alert.
            let error = client_saw.unwrap_err();
            assert!(error.contains("CertificateRequired") || error.contains("alert"), "{error}");
        }
    }
}

#[test]
fn a_reload_changes_the_certificate_of_new_connections_only() {
    let first = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let second = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = ServerTls::load(first.source(None), &[]).unwrap();
    let before = tls.config();
    // Same paths, new contents: the second CA's certificate and key.
    std::fs::copy(second.dir.join("server.pem"), first.dir.join("server.pem")).unwrap();
    std::fs::copy(second.dir.join("server.key"), first.dir.join("server.key")).unwrap();
    tls.reload().unwrap();
    let after = tls.config();
    assert!(!Arc::ptr_eq(&before, &after));
    let handshake = |config: Arc<ServerConfig>, client: Arc<rustls::ClientConfig>| {
        let (server, client) = run(
            move |tcp, scratch| async move { accept(tcp, config, scratch, DEADLINE).await.err().map(|e| e.reason()) },
            move |port| {
                let mut stream = connect(port, client);
                stream.write_all(b"x").and_then(|()| stream.flush()).map_err(|e| e.to_string())
            },
        );
        (server, client.is_ok())
    };
    // The configuration taken before the reload is what an open connection keeps.
    assert_eq!(handshake(before, first.client(&rustls::version::TLS13, false)), (None, true));
    assert_eq!(handshake(Arc::clone(&after), second.client(&rustls::version::TLS13, false)), (None, true));
    let (server, trusted) = handshake(after, first.client(&rustls::version::TLS13, false));
    assert!(!trusted, "the old CA does not sign the new certificate");
    assert!(server.is_some());
    // A bad file on reload keeps the certificate in use.
    std::fs::write(first.dir.join("server.key"), "not a key").unwrap();
    let error = tls.reload().unwrap_err().to_string();
    assert!(error.starts_with("KEY ") && error.contains("server.key"), "{error}");
    assert_eq!(handshake(tls.config(), second.client(&rustls::version::TLS13, false)), (None, true));
}

#[test]
fn bad_files_name_their_key_and_path() {
    let pki = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let error = |source: TlsSource| ServerTls::load(source, &[]).unwrap_err().to_string();
    let mut missing = pki.source(None);
    missing.cert_file = pki.dir.join("absent.pem");
    let text = error(missing);
    assert!(text.starts_with(&format!("CERT {}: cannot read: ", pki.dir.join("absent.pem").display())), "{text}");
    let mut empty = pki.source(None);
    std::fs::write(pki.dir.join("empty.pem"), "nothing here\n").unwrap();
    empty.cert_file = pki.dir.join("empty.pem");
    assert!(error(empty).ends_with("empty.pem: no PEM certificate in it"));
    let mut no_key = pki.source(None);
    no_key.key_file = pki.dir.join("server.pem");
    let text = error(no_key);
    assert!(text.starts_with("KEY ") && text.contains("no PEM private key in it"), "{text}");
    // A key of another certificate.
    let other = Pki::new(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut mismatch = pki.source(None);
    mismatch.key_file = other.dir.join("server.key");
    let text = error(mismatch);
    assert!(text.starts_with("CERT ") && text.contains(" with KEY "), "{text}");
    let mut bad_ca = pki.source(Some(ClientAuth::Required));
    bad_ca.client_ca_file = Some(pki.dir.join("empty.pem"));
    assert!(error(bad_ca).starts_with("CA "));
}
