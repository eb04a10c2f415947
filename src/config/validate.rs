//! The [`Validator`]: validation in progress. It remembers the file (every error names
//! it) and collects warnings, and it owns the checks of single values every table
//! shares: durations, counts, ports, URLs, unit names, host names, secrets and paths.
//! The tables themselves are converted in `tables.rs`.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::error::ConfigError;
use super::{ClientCertificate, PemFile, TlsConfig, TlsMode, defaults, is_loopback, raw};
use crate::careful_read::{self, Problem};
use crate::secret::Secret;
use crate::serve::tls;

/// A `host:port`, shown as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `tls_cert_file` and `tls_key_file` of a listener (`[metrics]`, `[witness]`): PEM
/// files, checked when the config is read (`serve::tls`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsFiles {
    /// The server's certificate, then any intermediates.
    #[serde(rename = "tls_cert_file")]
    pub cert_file: PathBuf,
    /// Its private key.
    #[serde(rename = "tls_key_file")]
    pub key_file: PathBuf,
}

/// Validation in progress: remembers the file, collects warnings.
pub(super) struct Validator<'a> {
    file: &'a Path,
    warnings: Vec<String>,
}

impl<'a> Validator<'a> {
    /// Starts validating what was read from `file`.
    pub(super) fn new(file: &'a Path) -> Self {
        Self {
            file,
            warnings: Vec::new(),
        }
    }

    /// The warnings collected, for the finished config.
    pub(super) fn into_warnings(self) -> Vec<String> {
        self.warnings
    }

    /// Something allowed but unwise, said with the file's name.
    pub(super) fn warn(&mut self, text: impl Display) {
        self.warnings
            .push(format!("{}: {text}", self.file.display()));
    }

    pub(super) fn error(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            key: Some(key.to_string()),
            line_col: None,
            problem: problem.into(),
        }
    }

    /// A duration as written, such as "500ms" or "5m"; never zero.
    pub(super) fn duration(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        let parsed = humantime::parse_duration(text).map_err(|e| {
            self.error(
                key,
                format!("{text:?} is not a duration ({e}); write e.g. \"500ms\", \"10s\", \"5m\""),
            )
        })?;
        if parsed.is_zero() {
            return Err(self.error(key, "must be longer than zero"));
        }
        Ok(parsed)
    }

    /// A duration that may be left out.
    pub(super) fn optional_duration(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Option<Duration>, ConfigError> {
        value.map(|text| self.duration(key, text)).transpose()
    }

    /// A duration, `default` when left out.
    pub(super) fn duration_or(
        &self,
        key: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        Ok(self.optional_duration(key, value)?.unwrap_or(default))
    }

    /// A count of at least 1, `default` when left out. A count beyond `u32` is too
    /// large, not too small.
    pub(super) fn count(
        &self,
        key: &str,
        value: Option<i64>,
        default: u32,
    ) -> Result<u32, ConfigError> {
        match value {
            None => Ok(default),
            Some(n) if n < 1 => Err(self.error(key, format!("{n} must be at least 1"))),
            Some(n) => u32::try_from(n).map_err(|_| {
                self.error(
                    key,
                    format!("{n} is too large; the maximum is {}", u32::MAX),
                )
            }),
        }
    }

    /// A TCP port, `default` when left out.
    pub(super) fn port(
        &self,
        key: &str,
        value: Option<i64>,
        default: u16,
    ) -> Result<u16, ConfigError> {
        match value {
            None => Ok(default),
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| self.error(key, format!("{p} is not a TCP port (1-65535)"))),
        }
    }

    /// A `host:port` (`[v6]:port` for an IPv6 address).
    pub(super) fn host_port(&self, key: &str, text: &str) -> Result<Address, ConfigError> {
        let problem = || {
            self.error(
                key,
                format!("{text:?} is not host:port (e.g. \"10.0.0.2:3306\")"),
            )
        };
        let (host, port) = text.trim().rsplit_once(':').ok_or_else(problem)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: i64 = port.parse().map_err(|_| problem())?;
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(problem());
        }
        Ok(Address {
            host: host.to_string(),
            port: self.port(key, Some(port), 0)?,
        })
    }

    pub(super) fn url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(text)
            .map_err(|e| self.error(key, format!("{text:?} is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.error(key, format!("{text:?} must be an http:// or https:// URL")));
        }
        Ok(url)
    }

    pub(super) fn non_empty(&self, key: &str, text: &str) -> Result<String, ConfigError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        Ok(trimmed.to_string())
    }

    /// A `host:port` address with a port that is not 0.
    pub(super) fn address(&self, key: &str, text: &str) -> Result<String, ConfigError> {
        let address = self.non_empty(key, text)?;
        let has_port = match address.rsplit_once(':') {
            Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
            None => false,
        };
        if !has_port {
            return Err(self.error(key, format!("{address:?} must be host:port")));
        }
        Ok(address)
    }

    /// An address to listen on: an IP address and a port, as `127.0.0.1:9187` or
    /// `[::1]:9187`. A host name is refused: which address it would bind is the
    /// resolver's choice, not the operator's.
    pub(super) fn listen_address(
        &self,
        key: &str,
        text: &str,
    ) -> Result<std::net::SocketAddr, ConfigError> {
        let text = self.non_empty(key, text)?;
        text.parse().map_err(|_| {
            self.error(
                key,
                format!(
                    "{text:?} is not an IP address with a port; write e.g. \"127.0.0.1:9187\" or \"[::1]:9187\""
                ),
            )
        })
    }

    /// `{table}.tls_cert_file` and `{table}.tls_key_file`: both or neither; the files
    /// must make a TLS configuration (PEM, the key going with the certificate).
    pub(super) fn tls_files(
        &self,
        table: &str,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        let key_of = |file: tls::File| format!("{table}.{}", file.key());
        let (cert, key) = match (cert, key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (self.resolve(cert), self.resolve(key)),
            (Some(_), None) => {
                return Err(self.error(
                    &key_of(tls::File::Key),
                    "missing: tls_cert_file is given; TLS needs both the certificate and its key",
                ));
            }
            (None, Some(_)) => {
                return Err(self.error(
                    &key_of(tls::File::Certificate),
                    "missing: tls_key_file is given; TLS needs both the certificate and its key",
                ));
            }
        };
        tls::server_config(&cert, &key).map_err(|e| self.error(&key_of(e.file), e.problem))?;
        Ok(Some(TlsFiles {
            cert_file: cert,
            key_file: key,
        }))
    }

    /// A systemd unit name, as `systemctl` takes it (never an option).
    pub(super) fn unit_name(&self, key: &str, text: &str) -> Result<String, ConfigError> {
        let unit = self.non_empty(key, text)?;
        if unit.starts_with('-') || unit.contains(char::is_whitespace) {
            return Err(self.error(key, format!("{unit:?} is not a unit name")));
        }
        Ok(unit)
    }

    /// A secret given as `key` (inline) or `key_file`; exactly one of them.
    pub(super) fn secret(
        &mut self,
        key: &str,
        inline: Option<&str>,
        file: Option<&str>,
    ) -> Result<Secret, ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                Err(self.error(key, format!("give either {key} or {key}_file, not both")))
            }
            (None, None) => Err(self.error(
                key,
                format!("missing: give {key}_file (a file holding it) or {key}"),
            )),
            (Some(value), None) => {
                if value.is_empty() {
                    return Err(self.error(key, "must not be empty"));
                }
                self.one_line(key, value)?;
                self.warn(format!(
                    "{key} is written inline; prefer {key}_file with a file only the service can read"
                ));
                Ok(Secret::inline(value))
            }
            (None, Some(path)) => self.secret_file(key, path),
        }
    }

    /// The trimmed contents of the file named by `{key}_file`; never empty. Read the
    /// careful way ([`careful_read`]): a FIFO, a device or a file over 64 KiB is refused
    /// at once, naming the key that named it. A file every user can read draws a
    /// warning.
    fn secret_file(&mut self, key: &str, path: &str) -> Result<Secret, ConfigError> {
        let file_key = format!("{key}_file");
        let path = self.resolve(path);
        let text = careful_read::read_to_string(&path, careful_read::SECRET).map_err(|e| {
            let problem = match e.problem {
                Problem::Io(e) => format!("cannot read secret file {}: {e}", path.display()),
                refused => format!("secret file {} {refused}", path.display()),
            };
            self.error(&file_key, problem)
        })?;
        let value = text.trim();
        if value.is_empty() {
            return Err(self.error(
                &file_key,
                format!("secret file {} is empty", path.display()),
            ));
        }
        self.one_line(&file_key, value)?;
        // Named by its own path, like a world-readable config; once per file.
        if let Some(warning) = super::file::world_readable_secret_file(&path, &file_key)
            && !self
                .warnings
                .iter()
                .any(|w| w.starts_with(&format!("{}: ", path.display())))
        {
            self.warnings.push(warning);
        }
        Ok(Secret::from_file(value, path))
    }

    /// A secret goes into a header, a URL or a login as one line: a line break, tab or
    /// other control character inside it (a file of two lines) cannot be sent, or is cut
    /// silently. A plain space is let through: a database password may hold one.
    fn one_line(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |c: char| c.is_control() || (c.is_whitespace() && c != ' ');
        match value.chars().position(bad) {
            None => Ok(()),
            Some(at) => Err(self.error(
                key,
                format!(
                    "the secret holds a line break, tab or other control character (character {} of {}); it must be one line",
                    at + 1,
                    value.chars().count()
                ),
            )),
        }
    }

    /// The TLS keys (`tls`, `tls_ca_file`, `tls_cert_file`, `tls_key_file`) of the table
    /// `prefix` that names the MariaDB server at `host`. The files are read now, the
    /// careful way, and must hold what they are for; a server elsewhere than on this
    /// host reached without verifying it draws a warning.
    pub(super) fn tls(
        &mut self,
        prefix: &str,
        host: &str,
        raw: raw::Tls<'_>,
    ) -> Result<TlsConfig, ConfigError> {
        let key = |field: &str| format!("{prefix}.{field}");
        let mode = self.tls_mode(&key("tls"), raw.mode, host)?;
        let ca = match raw.ca_file {
            None => None,
            Some(_) if !mode.verifies() => {
                return Err(self.error(
                    &key("tls_ca_file"),
                    format!(
                        "only verify_ca and verify_identity check a CA, and tls is {:?}{}",
                        mode.as_str(),
                        if raw.mode.is_none() {
                            " (the default for a server on this host)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            Some(path) => Some(self.pem_file(&key("tls_ca_file"), path, Pem::Certificates)?),
        };
        let client = match (raw.cert_file, raw.key_file) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    self.error(&key("tls_key_file"), "missing: tls_cert_file needs its key")
                );
            }
            (None, Some(_)) => {
                return Err(self.error(
                    &key("tls_cert_file"),
                    "missing: tls_key_file needs its certificate",
                ));
            }
            (Some(_), Some(_)) if mode == TlsMode::Disabled => {
                return Err(self.error(
                    &key("tls_cert_file"),
                    "a client certificate needs TLS, and tls is \"disabled\"",
                ));
            }
            (Some(cert), Some(private)) => Some(ClientCertificate {
                cert: self.pem_file(&key("tls_cert_file"), cert, Pem::Certificates)?,
                key: self.pem_file(&key("tls_key_file"), private, Pem::PrivateKey)?,
            }),
        };
        self.unverified_warning(
            prefix,
            host,
            mode,
            raw.mode.is_some(),
            ca.is_some(),
            "the password and every answer",
        );
        Ok(TlsConfig { mode, ca, client })
    }

    /// A `tls` key: `disabled`, `required`, `verify_ca` or `verify_identity`; left out,
    /// the default for a server at `host`.
    pub(super) fn tls_mode(
        &self,
        key: &str,
        text: Option<&str>,
        host: &str,
    ) -> Result<TlsMode, ConfigError> {
        Ok(match text.map(str::trim) {
            None => defaults::tls_mode(host),
            Some("disabled") => TlsMode::Disabled,
            Some("required") => TlsMode::Required,
            Some("verify_ca") => TlsMode::VerifyCa,
            Some("verify_identity") => TlsMode::VerifyIdentity,
            Some(other) => {
                return Err(self.error(
                    key,
                    format!("{other:?} is not a TLS mode: use disabled, required, verify_ca or verify_identity"),
                ));
            }
        })
    }

    /// The warning for a server at `host` that is not on this host and is reached
    /// without verifying it (`written`: the mode was chosen, not the default); or, when
    /// the default `verify_identity` applies without a CA file, what that means for a
    /// config written before TLS was supported. `traffic` says what crosses the link.
    pub(super) fn unverified_warning(
        &mut self,
        prefix: &str,
        host: &str,
        mode: TlsMode,
        written: bool,
        has_ca: bool,
        traffic: &str,
    ) {
        if is_loopback(host) {
            return;
        }
        let warning = match mode {
            TlsMode::Disabled => format!(
                "{prefix}.tls: {host} is not on this host, and tls = \"disabled\": {traffic} cross the network in plain text; set tls = \"verify_identity\" (with tls_ca_file for your own CA)"
            ),
            TlsMode::Required => format!(
                "{prefix}.tls: {host} is not on this host, and tls = \"required\" does not verify it: a man in the middle reads {traffic} unnoticed; set tls = \"verify_identity\" with tls_ca_file"
            ),
            _ if !written && !has_ca => format!(
                "{prefix}.tls: not set, so {host} is reached with verify_identity (the default for a server not on this host), trusting the public CAs only: set tls_ca_file to the CA of your MariaDB certificates, or tls = \"disabled\" to keep plain TCP until the server has TLS"
            ),
            _ => return,
        };
        self.warn(warning);
    }

    /// The PEM file named by `key`, read the careful way and checked to hold `what`.
    fn pem_file(&self, key: &str, path: &str, what: Pem) -> Result<PemFile, ConfigError> {
        let path = self.resolve(path);
        let text = careful_read::read_to_string(&path, careful_read::PEM).map_err(|e| {
            let problem = match e.problem {
                Problem::Io(e) => format!("cannot read {}: {e}", path.display()),
                refused => format!("{} {refused}", path.display()),
            };
            self.error(key, problem)
        })?;
        let bytes = text.as_bytes();
        let read = match what {
            Pem::Certificates => {
                let certificates: Result<Vec<_>, _> =
                    CertificateDer::pem_slice_iter(bytes).collect();
                match certificates {
                    Ok(found) if !found.is_empty() => Ok(bytes.to_vec()),
                    Ok(_) => {
                        Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string())
                    }
                    Err(e) => Err(format!("is not a readable PEM certificate file ({e})")),
                }
            }
            // Kept as the MariaDB client takes it.
            Pem::PrivateKey => super::tls::client_key_for_driver(bytes),
        };
        match read {
            Ok(pem) => Ok(PemFile {
                pem: pem.into(),
                path,
            }),
            Err(problem) => Err(self.error(key, format!("{} {problem}", path.display()))),
        }
    }

    /// A path on a database host, for its MariaDB to read (the replication channel's
    /// TLS files): absolute, one line; never opened here.
    pub(super) fn server_path(&self, key: &str, text: &str) -> Result<String, ConfigError> {
        let path = self.non_empty(key, text)?;
        if !path.starts_with('/') {
            return Err(self.error(
                key,
                format!("{path:?} must be an absolute path (the replica's MariaDB reads it, on its own host)"),
            ));
        }
        if path.chars().any(char::is_control) {
            return Err(self.error(key, "must be one line, without control characters"));
        }
        Ok(path)
    }

    /// A wait that must end before the next round is due.
    pub(super) fn shorter_than_interval(
        &self,
        key: &str,
        value: Duration,
        interval: Duration,
    ) -> Result<(), ConfigError> {
        if value >= interval {
            return Err(self.error(
                key,
                format!(
                    "{} must be shorter than probe.interval ({})",
                    humantime::format_duration(value),
                    humantime::format_duration(interval)
                ),
            ));
        }
        Ok(())
    }

    /// Relative paths are taken from the config file's directory, so a config and its
    /// secrets can move together.
    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(path)
        }
    }
}

/// What a PEM file must hold.
#[derive(Clone, Copy)]
enum Pem {
    /// At least one certificate (a CA bundle, a certificate chain).
    Certificates,
    /// A private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

/// Why `name` is not a host name a DNS record can point to (a CNAME's content), or
/// `None` when it is one: letters, digits, `-` and `_` in labels of 1 to 63 characters
/// that neither start nor end with `-`, at most 253 characters, one final dot allowed.
/// An IP address is not a host name, nor anything whose last label is all digits
/// (`203.0.113` is a truncated address, not a name).
pub(super) fn host_name_problem(name: &str) -> Option<String> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Some("is an IP address, not a host name".to_string());
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return Some(format!(
            "is {} characters long; a host name has at most 253",
            name.len()
        ));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Some("has an empty label (two dots in a row, or a dot first)".to_string());
        }
        if label.len() > 63 {
            return Some(format!(
                "has the label {label:?} of {} characters; a label has at most 63",
                label.len()
            ));
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Some(format!(
                "has the label {label:?}; a label holds only letters, digits, '-' and '_' (an international name in its xn-- form)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!(
                "has the label {label:?}; a label neither starts nor ends with '-'"
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()))
    {
        return Some("ends in an all-digit label, like an address, not a host name".to_string());
    }
    None
}
