//! A port's TLS files ([`TlsSource`]) and the rustls server configuration built from them
//! ([`ServerTls`]), swapped whole by [`ServerTls::reload`]: connections accepted after a reload
//! get the new certificate (and client CA), those already open keep the one they were accepted
//! with.
//!
//! Every connection of every shard takes the configuration with one atomic load ([`arc_swap`]);
//! a reload builds the new one on the signal thread first and swaps it in only if every file
//! read and parsed, so a bad file never replaces a good certificate.
//!
//! Lives on: shared by every shard (immutable, swapped whole).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ProducesTickets, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

/// Whether a port asks for client certificates (mTLS), once a client CA is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client may present a certificate (it is then verified); one without is accepted.
    Optional,
    /// A client without a certificate the CA signed fails the handshake.
    Required,
}

/// Where a port's certificate, key and (for mTLS) client CA come from, with the configuration
/// keys that named them, for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSource {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1; ECDSA, RSA or Ed25519).
    pub key_file: PathBuf,
    /// PEM CA certificates that sign client certificates; `None`: no client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate is required when `client_ca_file` is set.
    pub client_auth: ClientAuth,
    /// The keys that named the three files, in that order.
    pub keys: [&'static str; 3],
}

/// Why a port's TLS configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read, or held nothing usable.
    #[error("{key} {}: {reason}", path.display())]
    File {
        /// The key that named the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The files read, but rustls refused them together (for example a key that does not match
    /// the certificate).
    #[error("{cert_key} {} with {key_key} {}: {reason}", cert.display(), key.display())]
    Pair {
        /// The certificate's key name.
        cert_key: &'static str,
        /// The certificate file.
        cert: PathBuf,
        /// The private key's key name.
        key_key: &'static str,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        reason: String,
    },
}

/// A port's TLS configuration, reloadable.
///
/// Lives on: shared by every shard of the port.
pub struct ServerTls {
    source: TlsSource,
    alpn: Vec<Vec<u8>>,
    /// Kept across reloads, so that session tickets issued before a reload still resume.
    ticketer: Arc<dyn ProducesTickets>,
    current: ArcSwap<ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("source", &self.source).field("alpn", &self.alpn).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads `source`'s files and builds the configuration, offering `alpn` (for example
    /// `h2` on the gRPC port, `http/1.1` on the HTTP port).
    pub fn load(source: TlsSource, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|error| TlsError::File {
            key: source.keys[0],
            path: source.cert_file.clone(),
            reason: format!("cannot create the session ticket key: {error}"),
        })?;
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = build(&source, &alpn, &ticketer)?;
        Ok(ServerTls { source, alpn, ticketer, current: ArcSwap::from_pointee(config) })
    }

    /// The configuration a new connection is accepted with.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Reads the files again and, if all of them are good, makes them what new connections get.
    /// On an error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.source, &self.alpn, &self.ticketer)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// The files it is built from.
    pub fn source(&self) -> &TlsSource {
        &self.source
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(source: &TlsSource, alpn: &[Vec<u8>], ticketer: &Arc<dyn ProducesTickets>) -> Result<ServerConfig, TlsError> {
    let [cert_key, key_key, ca_key] = source.keys;
    let certs = read_certs(cert_key, &source.cert_file)?;
    let key = read_key(key_key, &source.key_file)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| pair_error(source, error))?;
    let builder = match &source.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_key, ca_file)? {
                roots.add(cert).map_err(|error| file_error(ca_key, ca_file, error.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match source.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            };
            let verifier = verifier.build().map_err(|error| file_error(ca_key, ca_file, error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|error| pair_error(source, error))?;
    config.alpn_protocols = alpn.to_vec();
    // Resumption without shared state between shards: stateless tickets, one per handshake.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.ticketer = Arc::clone(ticketer);
    config.send_tls13_tickets = 1;
    Ok(config)
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(key, path, pem_reason(&error)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(key, path, pem_reason(&error)))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            file_error(key, path, "no PEM private key in it (PKCS#8, PKCS#1 or SEC1)".to_owned())
        }
        other => file_error(key, path, pem_reason(&other)),
    })
}

fn pem_reason(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(error) => format!("cannot read: {error}"),
        other => format!("not a valid PEM file: {other}"),
    }
}

fn file_error(key: &'static str, path: &Path, reason: String) -> TlsError {
    TlsError::File { key, path: path.to_owned(), reason }
}

fn pair_error(source: &TlsSource, error: rustls::Error) -> TlsError {
    TlsError::Pair {
        cert_key: source.keys[0],
        cert: source.cert_file.clone(),
        key_key: source.keys[1],
        key: source.key_file.clone(),
        reason: error.to_string(),
    }
}
