//! What a failed run of the MySQL client means, in words: it could not connect (client errors
//! `2xxx`, access denied, unknown database, locked account) or the server answered and refused
//! the query (`1142` command denied, ...). Only the first is "cannot connect".

use crate::jobs::model::gist;

/// Server errors that happen while connecting (or selecting the database at connect time).
const CONNECT_ERRORS: [u32; 11] = [
    1040, // too many connections
    1044, // access denied to the database
    1045, // access denied (user or password)
    1049, // unknown database
    1129, // host blocked
    1130, // host not allowed
    1203, // too many connections for the user
    1226, // a resource limit reached
    1251, // client does not support the authentication protocol
    1698, // access denied (socket authentication)
    4151, // account locked
];

/// The code of the first `ERROR <code> (<state>)...` line the client printed.
pub fn error_code(stderr: &str) -> Option<u32> {
    stderr.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("ERROR ")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Whether the client failed to connect at all, as opposed to the server refusing a query.
pub fn is_connect_error(code: u32) -> bool {
    (2000..3000).contains(&code) || CONNECT_ERRORS.contains(&code)
}

/// The one-line reason of a failed client run on `database` that exited with `exit`.
pub fn describe(database: &str, exit: &str, stderr: &str) -> String {
    let said = gist(stderr, 300);
    match error_code(stderr) {
        Some(code) if is_connect_error(code) => {
            format!("cannot connect to database {database} ({exit}): {said}")
        }
        Some(_) => format!("database {database} refused the query ({exit}): {said}"),
        None => format!("the MySQL client failed on database {database} ({exit}): {said}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connecting_and_refusing_are_told_apart() {
        let socket = "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)";
        let denied = "ERROR 1045 (28000): Access denied for user 'passbolt'@'localhost' (using password: YES)";
        let locked = "ERROR 4151 (HY000): Access denied, this account is locked";
        for text in [socket, denied, locked] {
            let why = describe("passbolt", "exit 1", text);
            assert!(
                why.starts_with("cannot connect to database passbolt (exit 1)"),
                "{why}"
            );
        }
        let refused = "ERROR 1142 (42000) at line 1: DROP command denied to user 'passbolt'@'localhost' for table `passbolt`.`users`";
        let why = describe("passbolt", "exit 1", refused);
        assert!(
            why.starts_with("database passbolt refused the query"),
            "{why}"
        );
        assert!(why.contains("DROP command denied"), "{why}");
        for why in [why, describe("passbolt", "exit 1", denied)] {
            assert!(!why.contains("unreachable"), "{why}");
        }
        let odd = describe("passbolt", "killed by signal 9", "");
        assert!(odd.starts_with("the MySQL client failed"), "{odd}");
        assert_eq!(
            error_code("warning\nERROR 1049 (42000): Unknown database 'x'"),
            Some(1049)
        );
        assert_eq!(error_code("ERRORS everywhere"), None);
    }
}
