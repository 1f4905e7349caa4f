//! TLS options every command that connects takes: `--tls` (or an `https://`/`wss://` address),
//! a CA file, a client certificate, and `--insecure` only when asked for by name.

use std::path::PathBuf;

use clap::Args;

/// How to connect over TLS.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct TlsArgs {
    /// Connect over TLS (wss://, https://). Implied by an https:// or wss:// --addr, and by
    /// --ca-file.
    #[arg(long)]
    pub(crate) tls: bool,
    /// PEM CA certificates that sign the server's certificate, trusted instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for a server that asks for one (mTLS); with --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub(crate) client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub(crate) client_key: Option<PathBuf>,
    /// Accept any server certificate, for any name: encrypted, but to whoever answers. For a
    /// test server only.
    #[arg(long)]
    pub(crate) insecure: bool,
}

impl TlsArgs {
    /// Whether to connect over TLS to `addr`.
    pub(crate) fn secure(&self, addr: Option<&str>) -> bool {
        self.tls
            || self.ca_file.is_some()
            || self.insecure
            || addr.is_some_and(|a| a.starts_with("https://") || a.starts_with("wss://"))
    }
}

/// Applies [`TlsArgs`] to any client builder (they share the TLS setters).
macro_rules! with_tls {
    ($builder:expr, $tls:expr) => {{
        let tls: &$crate::tls::TlsArgs = $tls;
        let mut b = $builder;
        if let Some(ca) = &tls.ca_file {
            b = b.tls_ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
            b = b.tls_client_cert(cert, key);
        }
        if tls.insecure {
            b = b.tls_insecure_skip_verify();
        }
        b
    }};
}
pub(crate) use with_tls;
