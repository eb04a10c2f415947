//! The text of the statements that take no placeholders (`CHANGE MASTER`, `SHOW BINLOG
//! EVENTS IN`): every value in them a quoted literal.

use crate::secret::Secret;

/// `CHANGE MASTER ['name'] TO …`: MariaDB takes no placeholders here, so every value
/// is quoted. The connection name and user were refused with quotes in them at config
/// time; the password is escaped. (`rejoin --dry-run` shows it with a stand-in password.)
pub(crate) fn change_master(
    connection_name: &str,
    host: &str,
    port: u16,
    user: &str,
    password: &Secret,
) -> String {
    let connection = if connection_name.is_empty() {
        String::new()
    } else {
        format!("{} ", quote(connection_name))
    };
    format!(
        "CHANGE MASTER {connection}TO MASTER_HOST = {}, MASTER_PORT = {port}, MASTER_USER = {}, \
         MASTER_PASSWORD = {}, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
        quote(host),
        quote(user),
        quote(password.expose())
    )
}

/// A SQL string literal: backslashes and quotes escaped.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_master_quotes_every_value() {
        let sql = change_master("", "db.example", 3307, "repl", &Secret::inline("p'w\\x"));
        assert_eq!(
            sql,
            "CHANGE MASTER TO MASTER_HOST = 'db.example', MASTER_PORT = 3307, MASTER_USER = 'repl', \
             MASTER_PASSWORD = 'p\\'w\\\\x', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1"
        );
        let named = change_master("east", "h", 1, "u", &Secret::inline("p"));
        assert!(named.starts_with("CHANGE MASTER 'east' TO"), "{named}");
    }
}
