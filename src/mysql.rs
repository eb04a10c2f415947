//! How we connect to any MariaDB: the primary (the `mysql` check, and fencing it) and the
//! standby's own replica. One place builds the connection options, so every connection
//! we open reaches its server the same way.
//!
//! No timeouts are set here: each caller bounds its whole exchange (connect, handshake,
//! queries) with its own deadline, which a connect option could not cover.

use mysql_async::{Opts, OptsBuilder};

use crate::secret::Secret;

/// The options for `user` at `host:port`, over TCP.
///
/// `prefer_socket(false)`: mysql_async would otherwise switch to the server's Unix socket
/// when the server is on this host, and so talk past the address we were given (and
/// whatever stands on that path, such as a link a test cuts).
pub fn opts(host: &str, port: u16, user: &str, password: &Secret) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password.expose()))
        .prefer_socket(false)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_name_the_account_and_stay_on_tcp() {
        let opts = opts("primary.example", 3307, "failover", &Secret::inline("pw"));
        assert_eq!(opts.ip_or_hostname(), "primary.example");
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!(opts.user(), Some("failover"));
        assert_eq!(opts.pass(), Some("pw"));
        assert!(!opts.prefer_socket());
    }
}
