//! TLS on a listener (`tls_cert_file` and `tls_key_file` of `[witness]` and
//! `[metrics]`): rustls with the ring provider, as reqwest already builds it; never
//! OpenSSL.
//!
//! The files are PEM: the certificate file holds the server's certificate first, then
//! any intermediates; the key file one private key (PKCS#8, PKCS#1 or SEC1). Both are
//! read the careful way ([`careful_read`]), the key as a secret. The config's
//! validation loads them once to name a bad file by its key; the listener loads them
//! again when it starts. Only HTTP/1.1 is offered (ALPN), as that is all it speaks.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::careful_read::{self, Limit};

/// A certificate file: a chain of a few certificates is a few KiB.
pub const CERTIFICATE: Limit = Limit {
    what: "a certificate file",
    cap: 1024 * 1024,
};

/// Which of the two files is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    Certificate,
    Key,
}

impl File {
    /// The config key that names it.
    pub fn key(self) -> &'static str {
        match self {
            File::Certificate => "tls_cert_file",
            File::Key => "tls_key_file",
        }
    }
}

/// Why the files make no TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct TlsError {
    pub file: File,
    pub problem: String,
}

/// The rustls server configuration of the certificate chain at `cert` and the key at
/// `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let refuse = |file, problem: String| TlsError { file, problem };
    let text = careful_read::read_to_string(cert, CERTIFICATE)
        .map_err(|e| refuse(File::Certificate, e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            refuse(
                File::Certificate,
                format!("{} is not PEM certificates: {e}", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(refuse(
            File::Certificate,
            format!(
                "{} holds no certificate (-----BEGIN CERTIFICATE-----)",
                cert.display()
            ),
        ));
    }
    let text = careful_read::read_to_string(key, careful_read::SECRET)
        .map_err(|e| refuse(File::Key, e.to_string()))?;
    let private = PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| {
        refuse(
            File::Key,
            format!("{} holds no PEM private key: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refuse(File::Key, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            refuse(
                File::Key,
                format!(
                    "{} does not go with the certificate in {}: {e}",
                    key.display(),
                    cert.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The acceptor for a listener whose config table is `table` (`witness`, `metrics`);
/// an error names the key of the file at fault.
pub fn acceptor(table: &str, cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let config = server_config(cert, key)
        .map_err(|e| anyhow::anyhow!("{table}.{}: {}", e.file.key(), e.problem))?;
    Ok(TlsAcceptor::from(config))
}
