//! How we connect to any MariaDB: the primary (the `mysql` check, and fencing it), the
//! peer and this host's own database. One place builds the connection options, TLS
//! included, so every connection we open reaches its server the same way; one place
//! tells what a failed connection means (a TLS problem is named: unknown CA, name
//! mismatch, a server without TLS); and one place writes SQL string literals and
//! keeps a secret-bearing statement's server error out of every output.
//!
//! No timeouts are set here: each caller bounds its whole exchange (connect, handshake,
//! queries) with its own deadline, which a connect option could not cover.
//!
//! **A TLS failure is not a dead server.** MariaDB sends its greeting before TLS
//! starts, so a handshake that fails (an expired certificate, a CA file that no longer
//! matches after an upgrade, a server whose TLS was turned off) failed with a server
//! that answered. [`ConnectError::alive_despite_tls`] gives the `mysql` check the loud
//! detail it reports such a server with, as alive: a misconfigured CA must never be the
//! reason a live primary is promoted over. A dead server sends no greeting, so its
//! check still fails.

use std::fmt;

use mysql_async::prelude::Queryable;
use mysql_async::{
    ClientIdentity, Conn, DriverError, IoError, Opts, OptsBuilder, SslOpts, TlsError,
};
use rustls::CertificateError;

use crate::config::tls::{TlsConfig, TlsMode};
use crate::report::error_chain;
use crate::secret::Secret;

/// `verify_ca` (check the chain, not the name) through mysql_async 0.36, whose own
/// switch for it (`skip_domain_validation`) recognises a name mismatch by the text
/// `NotValidForName` in rustls's error, which rustls 0.23 no longer writes: every
/// mismatch would be refused. rustls quotes the name it verified against, so we verify
/// against this one: no certificate names it (`.invalid` is reserved), and the quoted
/// name carries the text the switch looks for. The chain, the validity dates and the
/// signatures are verified before the name, as for `verify_identity`.
const VERIFY_CA_NAME: &str = "verify-ca.NotValidForName.invalid";

/// MariaDB's `ER_ACCESS_DENIED_ERROR`: a bad password, and also (10.11) how a server
/// with `require_secure_transport = ON` refuses a plain connection.
const ACCESS_DENIED: u16 = 1045;

/// The options for `user` at `host:port`, over TCP, with TLS as `tls` says.
///
/// `prefer_socket(false)`: mysql_async would otherwise switch to the server's Unix socket
/// when the server is on this host, and so talk past the address we were given (and
/// whatever stands on that path, such as a link a test cuts), TLS settings included.
pub fn opts(host: &str, port: u16, user: &str, password: &Secret, tls: &TlsConfig) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password.expose()))
        .prefer_socket(false)
        .ssl_opts(ssl_opts(tls))
        .into()
}

/// mysql_async's TLS options for `tls`; `None` for plain TCP.
fn ssl_opts(tls: &TlsConfig) -> Option<SslOpts> {
    let ssl = match tls.mode {
        TlsMode::Disabled => return None,
        TlsMode::Required => SslOpts::default().with_danger_accept_invalid_certs(true),
        TlsMode::VerifyCa => SslOpts::default()
            .with_danger_skip_domain_validation(true)
            .with_danger_tls_hostname_override(Some(VERIFY_CA_NAME)),
        TlsMode::VerifyIdentity => SslOpts::default(),
    };
    // A CA file replaces the built-in public roots: a private CA's servers are trusted,
    // and nothing a public CA signed.
    let ssl = match &tls.ca {
        Some(ca) => ssl
            .with_root_certs(vec![ca.pem.to_vec().into()])
            .with_disable_built_in_roots(true),
        None => ssl,
    };
    Some(ssl.with_client_identity(tls.client.as_ref().map(|client| {
        ClientIdentity::new(
            client.cert.pem.to_vec().into(),
            client.key.pem.to_vec().into(),
        )
    })))
}

/// A connection to `user@host:port`, TLS as `tls` says; a failure says what failed,
/// naming the server and, for TLS, the problem.
pub async fn connect(
    host: &str,
    port: u16,
    user: &str,
    password: &Secret,
    tls: &TlsConfig,
) -> Result<Conn, ConnectError> {
    Conn::new(opts(host, port, user, password, tls))
        .await
        .map_err(|e| {
            let error = ConnectError::new(host, port, tls, &e);
            if let Problem::Tls(problem) = &error.problem {
                tracing::warn!("TLS with {host}:{port} failed: {problem}");
            }
            error
        })
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub struct ConnectError {
    /// `host:port`.
    server: String,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    /// The server answered, then TLS failed: what, in words.
    Tls(String),
    /// Anything else, as the driver says it (with a hint where one helps).
    Other(String),
}

impl ConnectError {
    fn new(host: &str, port: u16, tls: &TlsConfig, error: &mysql_async::Error) -> Self {
        let problem = match tls_problem(host, tls, error) {
            Some(problem) => Problem::Tls(problem),
            None => {
                let mut text = error_chain(error);
                if let mysql_async::Error::Server(e) = error
                    && e.code == ACCESS_DENIED
                    && tls.mode == TlsMode::Disabled
                {
                    text.push_str(
                        " (with tls = \"disabled\": a server with require_secure_transport = ON refuses a plain connection with this same error)",
                    );
                }
                Problem::Other(text)
            }
        };
        ConnectError {
            server: format_server(host, port),
            problem,
        }
    }

    /// Whether the server answered and the TLS handshake failed.
    pub fn is_tls(&self) -> bool {
        matches!(self.problem, Problem::Tls(_))
    }

    /// For the `mysql` check: the detail of a server that answered but failed TLS,
    /// which counts as alive (see the module's doc); `None` for any other failure.
    pub fn alive_despite_tls(&self) -> Option<String> {
        match &self.problem {
            Problem::Tls(problem) => Some(format!(
                "TLS FAILED, counted alive (the server answered; a TLS problem is no dead primary): {problem}. Fix the tls keys of this check or the server's certificate: until then its data-loss figures and the fence through this account are unavailable"
            )),
            Problem::Other(_) => None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Tls(problem) => write!(f, "TLS with {} failed: {problem}", self.server),
            Problem::Other(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for ConnectError {}

fn format_server(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What went wrong with TLS, in words; `None` when the failure is not TLS's.
fn tls_problem(host: &str, tls: &TlsConfig, error: &mysql_async::Error) -> Option<String> {
    match error {
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) => Some(format!(
            "the server does not offer TLS (have_ssl is not YES there), and tls = \"{}\" needs it: enable TLS on the server, or set tls = \"disabled\" for it",
            tls.mode.as_str()
        )),
        mysql_async::Error::Io(IoError::Tls(TlsError::InvalidDnsName(_))) => Some(format!(
            "{host:?} is neither a DNS name nor an IP address a certificate can hold: use one, or tls = \"verify_ca\""
        )),
        // Building the handshake from this host's own files (a key that does not fit
        // its certificate).
        mysql_async::Error::Io(IoError::Tls(e)) => Some(format!(
            "this host's TLS files could not be used ({e}): check tls_ca_file, tls_cert_file and tls_key_file"
        )),
        // The handshake itself: tokio-rustls hands rustls's error up inside an
        // io::Error.
        mysql_async::Error::Io(IoError::Io(e)) => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|e| handshake_problem(host, tls, e)),
        _ => None,
    }
}

/// A failed handshake, in words: which check failed and what to look at.
fn handshake_problem(host: &str, tls: &TlsConfig, error: &rustls::Error) -> String {
    let trusted = match &tls.ca {
        Some(ca) => format!("a CA in tls_ca_file ({})", ca.path.display()),
        None => "a public CA (there is no tls_ca_file)".to_string(),
    };
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                format!("unknown CA: the server's certificate is not signed by {trusted}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "name mismatch: the server's certificate does not name {host} ({cert}); use the name it has, or tls = \"verify_ca\""
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired ({cert})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "the server's certificate is not valid yet ({cert}): is this host's clock right?"
                )
            }
            other => format!("the server's certificate was refused: {other}"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server refused the handshake (TLS alert {alert:?}){}",
            if tls.client.is_some() {
                ": does it accept the certificate in tls_cert_file?"
            } else {
                ": does its account require a client certificate (tls_cert_file, tls_key_file)?"
            }
        ),
        other => format!("the TLS handshake failed: {other}"),
    }
}

/// How a session reads a string literal: whether a backslash escapes (MariaDB's
/// default) or is a character like any other (`NO_BACKSLASH_ESCAPES`). No literal
/// reads the same both ways when it holds a backslash, so the session is asked.
/// `ANSI_QUOTES` only changes what `"` means: a literal here is always in `'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    BackslashEscapes,
    NoBackslashEscapes,
}

impl Quoting {
    /// The quoting of a session whose `@@sql_mode` is `sql_mode`.
    pub fn for_sql_mode(sql_mode: &str) -> Quoting {
        let no_escapes = sql_mode
            .split(',')
            .any(|mode| mode.trim().eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES"));
        if no_escapes {
            Quoting::NoBackslashEscapes
        } else {
            Quoting::BackslashEscapes
        }
    }

    /// The quoting of `conn`'s session, read from its `@@SESSION.sql_mode`.
    pub async fn of_session(conn: &mut Conn) -> Result<Quoting, mysql_async::Error> {
        let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await?;
        Ok(Quoting::for_sql_mode(&mode.unwrap_or_default()))
    }

    /// `text` as a SQL string literal this session reads back as `text`: in single
    /// quotes, a quote doubled (read so in every sql_mode), a backslash doubled unless
    /// backslashes do not escape.
    pub fn literal(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 2);
        out.push('\'');
        for c in text.chars() {
            match c {
                '\'' => out.push_str("''"),
                '\\' if self == Quoting::BackslashEscapes => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    }
}

/// The error of a statement that carries a secret (`CHANGE MASTER`'s password), fit
/// for every output: MariaDB's message may quote the statement from where it stopped
/// reading (a syntax error does, password included), so a server's message is kept
/// only for the errors whose message never quotes it; otherwise its number and SQLSTATE
/// say what failed. Errors that are not the server's (the connection) never hold the
/// statement and are kept.
pub fn secret_statement_error(statement: &str, error: &mysql_async::Error) -> String {
    let mysql_async::Error::Server(server) = error else {
        return format!("{statement} failed: {}", error_chain(error));
    };
    let meaning = match server.code {
        // The messages of these never hold the statement's text.
        1045 | 1142 | 1198 | 1199 | 1200 | 1201 | 1227 | 1238 => server.message.clone(),
        1064 => "MariaDB could not parse it; some setting of [replication] may be one this server does not take".to_string(),
        _ => "its message is not shown: it may quote the statement, which holds the replication password".to_string(),
    };
    format!(
        "{statement} failed: MariaDB error {} ({}): {meaning}",
        server.code, server.state
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::config::{ClientCertificate, PemFile};

    fn pem(name: &str, text: &str) -> PemFile {
        PemFile {
            path: PathBuf::from(name),
            pem: Arc::from(text.as_bytes()),
        }
    }

    fn tls(mode: TlsMode) -> TlsConfig {
        TlsConfig {
            mode,
            ca: None,
            client: None,
        }
    }

    #[test]
    fn the_options_name_the_account_and_stay_on_tcp() {
        let opts = opts(
            "primary.example",
            3307,
            "failover",
            &Secret::inline("pw"),
            &TlsConfig::DISABLED,
        );
        assert_eq!(opts.ip_or_hostname(), "primary.example");
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!(opts.user(), Some("failover"));
        assert_eq!(opts.pass(), Some("pw"));
        assert!(!opts.prefer_socket());
        assert!(opts.ssl_opts().is_none(), "disabled is plain TCP");
    }

    #[test]
    fn each_tls_mode_sets_what_it_verifies() {
        let with = |mode| {
            opts("db", 3306, "u", &Secret::inline("p"), &tls(mode))
                .ssl_opts()
                .cloned()
                .expect("TLS on")
        };
        let required = with(TlsMode::Required);
        assert!(required.accept_invalid_certs());
        let verify_ca = with(TlsMode::VerifyCa);
        assert!(!verify_ca.accept_invalid_certs());
        assert!(verify_ca.skip_domain_validation());
        assert_eq!(verify_ca.tls_hostname_override(), Some(VERIFY_CA_NAME));
        let full = with(TlsMode::VerifyIdentity);
        assert!(!full.accept_invalid_certs() && !full.skip_domain_validation());
        assert_eq!(full.tls_hostname_override(), None);
        assert!(
            !full.disable_built_in_roots(),
            "no CA file: the public roots"
        );
    }

    #[test]
    fn a_ca_file_replaces_the_public_roots_and_a_client_certificate_goes_along() {
        let config = TlsConfig {
            mode: TlsMode::VerifyIdentity,
            ca: Some(pem("ca.pem", "CA")),
            client: Some(ClientCertificate {
                cert: pem("client.pem", "CERT"),
                key: pem("client.key", "KEY"),
            }),
        };
        let ssl = ssl_opts(&config).unwrap();
        assert!(ssl.disable_built_in_roots());
        assert_eq!(ssl.root_certs().len(), 1);
        let identity = ssl.client_identity().expect("client certificate");
        assert_eq!(identity.cert_chain(), b"CERT".to_vec().into());
        assert_eq!(identity.priv_key(), b"KEY".to_vec().into());
    }

    /// The `verify_ca` stand-in name must keep what mysql_async's name switch looks
    /// for, in the form rustls quotes it, and be a name no certificate holds.
    #[test]
    fn the_verify_ca_name_is_one_rustls_quotes_with_the_text_mysql_async_matches() {
        let name = rustls::pki_types::ServerName::try_from(VERIFY_CA_NAME).unwrap();
        let error = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: name.to_owned(),
            presented: vec!["db.example".to_string()],
        });
        assert!(error.to_string().contains("NotValidForName"), "{error}");
        assert!(VERIFY_CA_NAME.ends_with(".invalid"));
    }

    fn io_tls(e: rustls::Error) -> mysql_async::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e).into()
    }

    #[test]
    fn tls_failures_are_named_and_count_as_an_answer() {
        let config = TlsConfig {
            ca: Some(pem("/etc/fw/ca.pem", "")),
            ..tls(TlsMode::VerifyIdentity)
        };
        let unknown = ConnectError::new(
            "db.example",
            3306,
            &config,
            &io_tls(CertificateError::UnknownIssuer.into()),
        );
        assert!(unknown.is_tls());
        assert_eq!(
            unknown.to_string(),
            "TLS with db.example:3306 failed: unknown CA: the server's certificate is not signed by a CA in tls_ca_file (/etc/fw/ca.pem)"
        );
        let alive = unknown.alive_despite_tls().unwrap();
        assert!(alive.starts_with("TLS FAILED, counted alive"), "{alive}");
        assert!(alive.contains("unknown CA"), "{alive}");

        let mismatch = ConnectError::new(
            "db.example",
            3306,
            &config,
            &io_tls(CertificateError::NotValidForName.into()),
        );
        assert!(mismatch.to_string().contains("name mismatch"), "{mismatch}");
        assert!(mismatch.to_string().contains("does not name db.example"));

        let no_tls = ConnectError::new(
            "db.example",
            3306,
            &config,
            &DriverError::NoClientSslFlagFromServer.into(),
        );
        assert!(no_tls.is_tls());
        assert!(
            no_tls.to_string().contains("does not offer TLS"),
            "{no_tls}"
        );
    }

    #[test]
    fn a_dead_server_is_no_tls_failure() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = ConnectError::new(
            "db.example",
            3306,
            &tls(TlsMode::VerifyIdentity),
            &refused.into(),
        );
        assert!(!error.is_tls());
        assert_eq!(error.alive_despite_tls(), None);
        assert_eq!(error.to_string(), "Input/output error: refused");
    }

    #[test]
    fn access_denied_without_tls_mentions_require_secure_transport() {
        let denied = mysql_async::Error::Server(mysql_async::ServerError {
            code: ACCESS_DENIED,
            message: "Access denied for user 'watchdog'@'10.0.0.2' (using password: YES)".into(),
            state: "28000".into(),
        });
        let plain = ConnectError::new("db", 3306, &TlsConfig::DISABLED, &denied).to_string();
        assert!(plain.contains("require_secure_transport"), "{plain}");
        let verified = ConnectError::new("db", 3306, &tls(TlsMode::VerifyCa), &denied);
        assert!(!verified.to_string().contains("require_secure_transport"));
        assert!(!verified.is_tls(), "a refused login is no TLS failure");
    }

    /// An RSA key as OpenSSL 3 writes it (PKCS#8).
    #[test]
    fn literals_read_back_under_either_quoting() {
        let text = r#"p'w\"x\\y"#;
        assert_eq!(
            Quoting::BackslashEscapes.literal(text),
            r#"'p''w\\"x\\\\y'"#
        );
        assert_eq!(Quoting::NoBackslashEscapes.literal(text), r#"'p''w\"x\\y'"#);
        assert_eq!(Quoting::BackslashEscapes.literal(""), "''");
    }

    #[test]
    fn the_quoting_follows_the_sql_mode() {
        assert_eq!(
            Quoting::for_sql_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES,ANSI_QUOTES"),
            Quoting::NoBackslashEscapes
        );
        assert_eq!(
            Quoting::for_sql_mode("ANSI_QUOTES,STRICT_ALL_TABLES"),
            Quoting::BackslashEscapes
        );
        assert_eq!(Quoting::for_sql_mode(""), Quoting::BackslashEscapes);
    }

    /// A syntax error quotes the statement from where the parser stopped: a piece of
    /// the password, which the scrubber (whole secrets only) would let through.
    #[test]
    fn a_secret_statements_syntax_error_is_not_passed_through() {
        let error = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1064,
            message: "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'cret', MASTER_USE_GTID = slave_pos' at line 1".into(),
            state: "42000".into(),
        });
        let text = secret_statement_error("CHANGE MASTER TO db:3306", &error);
        assert!(!text.contains("cret"), "{text}");
        assert!(text.contains("MariaDB error 1064 (42000)"), "{text}");

        let unknown = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1210,
            message: "Incorrect arguments to 'se'cret'".into(),
            state: "HY000".into(),
        });
        let text = secret_statement_error("CHANGE MASTER TO db:3306", &unknown);
        assert!(!text.contains("cret"), "{text}");

        let privilege = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1227,
            message: "Access denied; you need (at least one of) the REPLICATION SLAVE ADMIN privilege(s) for this operation".into(),
            state: "42000".into(),
        });
        let text = secret_statement_error("CHANGE MASTER TO db:3306", &privilege);
        assert!(text.contains("REPLICATION SLAVE ADMIN"), "{text}");
    }
}
