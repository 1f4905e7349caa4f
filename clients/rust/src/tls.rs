//! TLS for `wss://` and `https://` URLs: the server's certificate verified against the system's
//! roots, or a CA file of the caller's (a private CA, a test CA); a client certificate for mTLS;
//! and verification off only when asked for by name ([`tls_insecure_skip_verify`]).
//!
//! All three transports use the same rustls configuration, with their own ALPN: `http/1.1` for
//! WebSocket upgrades and REST, `h2` for gRPC.
//!
//! [`tls_insecure_skip_verify`]: crate::RestBuilder::tls_insecure_skip_verify

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;

/// The TLS settings of a builder (its `tls_*` methods), or of a tool that makes its own TLS
/// connections with the same rules.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key presented to a server that asks (mTLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Accept any certificate: for a test server only.
    pub insecure: bool,
}

impl TlsOptions {
    /// The rustls configuration for a connection offering `alpn`; the error names the file
    /// that could not be used.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        let builder = if self.insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let mut config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| Error::Config(format!("TLS client key {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Config(format!("TLS client certificate {}: {e}", cert.display())))?
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A configuration for a connector that only ever connects in plain text (no roots loaded).
    pub(crate) fn plain_config() -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("invariant: ring supports the default versions")
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        Arc::new(config)
    }

    fn roots(&self) -> Result<RootCertStore, Error> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| Error::Config(format!("TLS CA file {}: {e}", path.display())))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    let why = native.errors.first().map_or_else(|| "none found".to_owned(), ToString::to_string);
                    return Err(Error::Config(format!(
                        "TLS: cannot load the system's root certificates ({why}); name a CA file"
                    )));
                }
            }
        }
        Ok(roots)
    }
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("TLS certificate file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("TLS certificate file {}: no PEM certificate in it", path.display())));
    }
    Ok(certs)
}

/// The verifier of `tls_insecure_skip_verify`: any certificate, any name. Signatures are still
/// checked, so the handshake itself is sound; who is at the other end is not.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
