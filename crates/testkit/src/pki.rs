//! A test PKI of a test's own: a CA, server certificates it signed (ECDSA P-256 by default; RSA
//! 2048 with a key `openssl` generates, as ring cannot), one for another host, one expired, and a
//! client certificate for mTLS; all as PEM files in a directory removed when the PKI is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

/// The key algorithm of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256 with SHA-256.
    EcdsaP256,
    /// RSA 2048 with SHA-256 (the key made by `openssl genpkey`).
    Rsa2048,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain (the certificate alone: the CA is the trust anchor).
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// A CA and the directory its files are in.
pub struct TestPki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    /// The CA's certificate, the trust anchor clients are given.
    pub ca_file: PathBuf,
}

impl TestPki {
    /// A new CA named `name`, in a fresh directory under the system's temporary directory.
    pub fn new(name: &str) -> TestPki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "raccoon-pki-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("raccoon test CA {name}"));
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let ca_file = dir.join("ca.pem");
        write(&ca_file, &ca.pem());
        TestPki { dir, ca, ca_key, ca_file }
    }

    /// A server certificate for `localhost` and 127.0.0.1, valid now.
    pub fn server(&self, file: &str, kind: KeyKind) -> CertFiles {
        self.issue(file, &["localhost", "127.0.0.1"], kind, Validity::Now)
    }

    /// A certificate for a host that is not this one (`elsewhere.example`).
    pub fn wrong_host(&self, file: &str) -> CertFiles {
        self.issue(file, &["elsewhere.example"], KeyKind::EcdsaP256, Validity::Now)
    }

    /// A certificate for `localhost` that expired in 2020.
    pub fn expired(&self, file: &str) -> CertFiles {
        self.issue(file, &["localhost", "127.0.0.1"], KeyKind::EcdsaP256, Validity::Expired)
    }

    /// A client certificate (mTLS) named `name`.
    pub fn client(&self, file: &str, name: &str) -> CertFiles {
        self.issue(file, &[name], KeyKind::EcdsaP256, Validity::Now)
    }

    /// A file of this PKI's directory (for a test's own files, e.g. a bad certificate).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn issue(&self, file: &str, names: &[&str], kind: KeyKind, validity: Validity) -> CertFiles {
        let key = match kind {
            KeyKind::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key"),
            KeyKind::Rsa2048 => {
                let out = Command::new("openssl")
                    .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
                    .output()
                    .expect("openssl genpkey (the RSA key ring cannot generate)");
                assert!(out.status.success(), "openssl genpkey: {}", String::from_utf8_lossy(&out.stderr));
                KeyPair::from_pem_and_sign_algo(&String::from_utf8_lossy(&out.stdout), &rcgen::PKCS_RSA_SHA256)
                    .expect("RSA key")
            }
        };
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).expect("certificate");
        let files = CertFiles { cert: self.dir.join(format!("{file}.pem")), key: self.dir.join(format!("{file}.key")) };
        write(&files.cert, &cert.pem());
        write(&files.key, &key.serialize_pem());
        files
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    Now,
    Expired,
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
