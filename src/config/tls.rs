//! TLS as the config declares it: how this program reaches each MariaDB server
//! ([`TlsConfig`]: a mode, a CA, a client certificate, read and checked at load), and
//! the replication channel every `CHANGE MASTER` of this program sets up
//! ([`ChannelConfig`], `[replication]`). Values only: the connections are the MariaDB
//! edge's (`mariadb::connect`), the statement's text `mariadb::channel`'s.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::ser::ser_duration;

/// TLS to one MariaDB server this program connects to: the keys `tls`, `tls_ca_file`,
/// `tls_cert_file` and `tls_key_file` of a `mysql` check, `[replica]` and `[peer]`.
/// The files are read (the careful way) and checked when the config is loaded, and
/// kept: renewed files take effect when the program starts again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsConfig {
    #[serde(rename = "tls")]
    pub mode: TlsMode,
    /// The CA certificates the server's certificate must chain to; `None`: the
    /// built-in public roots (Mozilla's, through webpki-roots). Not used by
    /// `disabled` and `required`.
    #[serde(rename = "tls_ca_file", skip_serializing_if = "Option::is_none")]
    pub ca: Option<PemFile>,
    /// A client certificate and its key, for an account that requires X509.
    #[serde(flatten)]
    pub client: Option<ClientCertificate>,
}

impl TlsConfig {
    /// No TLS at all: plain TCP.
    pub const DISABLED: TlsConfig = TlsConfig {
        mode: TlsMode::Disabled,
        ca: None,
        client: None,
    };
}

/// How far TLS goes, in MariaDB's (and MySQL's `--ssl-mode`) words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    Disabled,
    /// Encrypted, the server's certificate not checked: a man in the middle is not
    /// noticed.
    Required,
    /// Encrypted, the certificate signed by a trusted CA, its names not checked.
    VerifyCa,
    /// Encrypted, the certificate signed by a trusted CA and naming the host we
    /// connect to.
    VerifyIdentity,
}

impl TlsMode {
    /// The word the config uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Required => "required",
            TlsMode::VerifyCa => "verify_ca",
            TlsMode::VerifyIdentity => "verify_identity",
        }
    }

    /// Whether the server's certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyIdentity)
    }
}

/// A PEM file read when the config was loaded: its path (what `check-config` shows)
/// and its contents (never shown: a key file is one).
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pub pem: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PemFile({})", self.path.display())
    }
}

impl Serialize for PemFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.path.display())
    }
}

/// `tls_cert_file` and `tls_key_file`: always given together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientCertificate {
    #[serde(rename = "tls_cert_file")]
    pub cert: PemFile,
    #[serde(rename = "tls_key_file")]
    pub key: PemFile,
}

/// `[replication]`: the channel every `CHANGE MASTER` of this program sets up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelConfig {
    /// `MASTER_HEARTBEAT_PERIOD`: how often a silent source sends a heartbeat.
    #[serde(serialize_with = "ser_duration")]
    pub heartbeat_period: Duration,
    /// `MASTER_CONNECT_RETRY`: whole seconds between reconnection attempts.
    #[serde(serialize_with = "ser_duration")]
    pub connect_retry: Duration,
    /// `MASTER_RETRY_COUNT` (MariaDB 12.0 and later): attempts before the IO thread
    /// gives up. `None`: the server's `--master-retry-count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// Both hosts run semi-synchronous replication: each role change this program
    /// makes sets the semi-sync sides (a new primary's master side on, without waiting
    /// when no replica is connected; a new replica's slave side on), and each round
    /// checks them.
    pub semi_sync: bool,
    #[serde(flatten)]
    pub tls: ChannelTls,
}

/// The channel's TLS: `MASTER_SSL`, `MASTER_SSL_CA`, `MASTER_SSL_VERIFY_SERVER_CERT`,
/// `MASTER_SSL_CERT`, `MASTER_SSL_KEY`. The paths are the replica's MariaDB's to read,
/// on the database host (the same on both hosts of a pair: a switchover applies them on
/// the peer); this program never opens them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelTls {
    #[serde(rename = "tls")]
    pub mode: TlsMode,
    #[serde(rename = "tls_ca_file", skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(rename = "tls_cert_file", skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(rename = "tls_key_file", skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

impl ChannelTls {
    /// `MASTER_SSL`.
    pub fn ssl(&self) -> bool {
        self.mode != TlsMode::Disabled
    }

    /// `MASTER_SSL_CA`: only a verifying mode checks against a CA; the others clear it,
    /// or MariaDB would verify the chain all the same.
    pub fn ca(&self) -> &str {
        match self.mode {
            TlsMode::VerifyCa | TlsMode::VerifyIdentity => self.ca_file.as_deref().unwrap_or(""),
            TlsMode::Disabled | TlsMode::Required => "",
        }
    }

    /// `MASTER_SSL_VERIFY_SERVER_CERT`: MariaDB's name check (and its CA check).
    pub fn verify_server_cert(&self) -> bool {
        self.mode == TlsMode::VerifyIdentity
    }

    /// `MASTER_SSL_CERT`, empty when none.
    pub fn cert(&self) -> &str {
        if self.ssl() {
            self.cert_file.as_deref().unwrap_or("")
        } else {
            ""
        }
    }

    /// `MASTER_SSL_KEY`, empty when none.
    pub fn key(&self) -> &str {
        if self.ssl() {
            self.key_file.as_deref().unwrap_or("")
        } else {
            ""
        }
    }
}

/// Whether `host` names this machine only (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A client key (`tls_key_file`, PEM) as mysql_async 0.36 takes it: its rustls path
/// reads only RSA keys, as PKCS#1 (PEM `BEGIN RSA PRIVATE KEY`, or DER), while OpenSSL 3
/// writes PKCS#8 (`BEGIN PRIVATE KEY`). So a PKCS#1 PEM is kept, a PKCS#8 RSA key is
/// unwrapped to its PKCS#1 DER, and any other key is refused, saying why.
pub fn client_key_for_driver(pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(PrivateKeyDer::Pkcs1(_)) => Ok(pem.to_vec()),
        Ok(PrivateKeyDer::Pkcs8(key)) => rsa_of_pkcs8(key.secret_pkcs8_der()).ok_or_else(|| {
            "holds a key that is not RSA: the MariaDB client used here (mysql_async, rustls) presents RSA client keys only".to_string()
        }),
        Ok(_) => Err("holds an EC key: the MariaDB client used here (mysql_async, rustls) presents RSA client keys only".to_string()),
        Err(e) => Err(format!("holds no PEM private key ({e})")),
    }
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 `PrivateKeyInfo` of an RSA key:
/// `SEQUENCE { INTEGER version, SEQUENCE { OID rsaEncryption, ... }, OCTET STRING key }`.
/// `None` for another algorithm or anything malformed.
fn rsa_of_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    /// 1.2.840.113549.1.1.1
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (info, _) = der_element(pkcs8, 0x30)?;
    let (_version, rest) = der_element(info, 0x02)?;
    let (algorithm, rest) = der_element(rest, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (key, _) = der_element(rest, 0x04)?;
    Some(key.to_vec())
}

/// The contents of the DER element with `tag` at the start of `input`, and what
/// follows it; `None` when it is not there whole.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if found != tag {
        return None;
    }
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > 4 || rest.len() < bytes {
            return None;
        }
        let (len, rest) = rest.split_at(bytes);
        (len.iter().fold(0, |n, b| n << 8 | usize::from(*b)), rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::tests::TEST_EC_KEY as EC_PKCS8;
    use failover_watchdog_rig::mariadb::CLIENT_RSA_KEY as RSA_PKCS8;

    #[test]
    fn a_pkcs8_rsa_client_key_is_unwrapped_for_the_driver_and_an_ec_key_refused() {
        let der = client_key_for_driver(RSA_PKCS8.as_bytes()).unwrap();
        assert!(std::str::from_utf8(&der).is_err(), "DER, read as PKCS#1");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs1(der.into());
        rustls::crypto::ring::sign::any_supported_type(&key).expect("a usable RSA key");

        let error = client_key_for_driver(EC_PKCS8.as_bytes()).unwrap_err();
        assert!(error.contains("RSA client keys only"), "{error}");
        let error = client_key_for_driver(b"not a key").unwrap_err();
        assert!(error.contains("no PEM private key"), "{error}");
        assert_eq!(rsa_of_pkcs8(&[0x30, 0x82, 0xff]), None, "cut short");
    }
}
