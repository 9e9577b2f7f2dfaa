//! What the PostgreSQL tests of the workspace share (`rill-connect-postgres`'s source and sink
//! tests, `rill run`'s walkthrough tests): where the test server is, skipping loudly when
//! there is none, and its password (which those tests check is never logged).
//!
//! The tests start no server of their own: `scripts/postgres.sh start` initdb's and starts one
//! (logical replication on) and prints its connection string, which `scripts/test.sh` exports
//! as `RILL_POSTGRES_URL`, with `RILL_REQUIRE_POSTGRES=1` so that a missing server fails the
//! run instead of skipping it.
//!
//! **Owns:** reading those two variables, the skip message, and taking the password out of
//! the connection string. A dev-dependency only, kept as a crate (not a file both crates
//! include by path) so that the dependency shows in each `Cargo.toml`.
//! **May depend on:** nothing (std only), so that it costs the crates using it no build time.
//!
//! ```no_run
//! // The start of a test that needs the server:
//! let Some(url) = rill_test_postgres::postgres_url("the PostgreSQL source") else {
//!     return;
//! };
//! // ... connect to `url` ...
//! # drop(url);
//! ```

use std::io::Write;

/// The variable holding the test server's connection string.
pub const URL_VAR: &str = "RILL_POSTGRES_URL";
/// Set (to anything) when a missing server is a failure rather than a reason to skip.
pub const REQUIRE_VAR: &str = "RILL_REQUIRE_POSTGRES";

/// The test server's connection string (`RILL_POSTGRES_URL`), or `None`, after saying on
/// stderr that the test of `what` is skipped, when it is unset.
///
/// # Panics
/// When `RILL_REQUIRE_POSTGRES` is set but `RILL_POSTGRES_URL` is not: CI must not pass by
/// skipping.
pub fn postgres_url(what: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os(REQUIRE_VAR).is_some() => {
            panic!("{REQUIRE_VAR} is set but {URL_VAR} is not")
        }
        Err(_) => {
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: {URL_VAR} is unset; run `scripts/postgres.sh start` and \
                 export its output as {URL_VAR} to test {what} ***\n"
            );
            None
        }
    }
}

/// The password of a `postgres://user:password@host/...` connection string, for tests that
/// check it never shows up in a log; `None` when the string carries none.
///
/// ```
/// assert_eq!(
///     rill_test_postgres::password("postgres://rill:secret@127.0.0.1:25432/rill"),
///     Some("secret")
/// );
/// assert_eq!(rill_test_postgres::password("host=127.0.0.1 user=rill"), None);
/// ```
pub fn password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.split_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}
