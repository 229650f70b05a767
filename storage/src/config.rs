//! Which database to use, the settings that apply to either backend, and how to name the
//! database in logs without leaking credentials.

use std::path::PathBuf;
use std::time::Duration;

use crate::pg_tls::{split_tls_params, SslMode};
use crate::StoreError;

/// Where the server keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// An embedded SQLite file (created with its parent directory if missing), in WAL mode.
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// A PostgreSQL server reached through a small connection pool.
    Postgres {
        /// A libpq-style URL, e.g. `postgres://user:pass@host:5432/db?sslmode=verify-full`.
        /// `sslmode` and `sslrootcert` in the URL win over [`StoreOptions`].
        url: String,
        /// Maximum number of pooled connections (at least 1 is used).
        pool_size: usize,
    },
}

impl StoreConfig {
    /// "sqlite (./data/asobi.db)" or "postgresql (postgres://user@host:port/db)" – never prints a password.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sqlite { path } => format!("sqlite ({})", path.display()),
            StoreConfig::Postgres { url, .. } => {
                let parsed = split_tls_params(url)
                    .ok()
                    .and_then(|(rest, _)| rest.parse::<tokio_postgres::Config>().ok());
                match parsed {
                    Some(pg) => format!("postgresql ({})", redacted_url(&pg)),
                    None => "postgresql (unparsable url)".to_owned(),
                }
            }
        }
    }

    /// The backend name a handle for this config reports: "sqlite" or "postgresql".
    pub fn backend_name(&self) -> &'static str {
        match self {
            StoreConfig::Sqlite { .. } => "sqlite",
            StoreConfig::Postgres { .. } => "postgresql",
        }
    }
}

/// Default for [`StoreOptions::call_timeout`]. Every operation is a handful of indexed
/// statements, so a call that has not been answered in this time is waiting on a lock held by
/// someone else (SQLite) or on a database that is unreachable or badly overloaded; a quick
/// "unavailable" serves the player better than a request that hangs.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings for either backend. [`StoreOptions::from_env`] is what [`crate::StoreHandle::start`]
/// and [`crate::migrate`] use; [`crate::StoreHandle::start_with`] takes them explicitly.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Longest a call waits for its answer, queueing and lock waits included. Past it the call
    /// returns [`StoreError::Unavailable`].
    pub call_timeout: Duration,
    /// PostgreSQL `sslmode` used when the URL names none (`ASOBI_DB_SSLMODE`); libpq's default,
    /// `prefer`, when neither does.
    pub pg_sslmode: Option<SslMode>,
    /// PEM file of the CA(s) that sign the PostgreSQL server certificate, used when the URL has no
    /// `sslrootcert` (`ASOBI_DB_SSLROOTCERT`). `system` means the operating system's store.
    pub pg_sslrootcert: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            pg_sslmode: None,
            pg_sslrootcert: None,
        }
    }
}

/// Environment variable for [`StoreOptions::pg_sslmode`].
pub const SSLMODE_ENV: &str = "ASOBI_DB_SSLMODE";
/// Environment variable for [`StoreOptions::pg_sslrootcert`].
pub const SSLROOTCERT_ENV: &str = "ASOBI_DB_SSLROOTCERT";

impl StoreOptions {
    /// Defaults, with `ASOBI_DB_SSLMODE` and `ASOBI_DB_SSLROOTCERT` applied when set and not
    /// empty. [`StoreError::Config`] for an unknown sslmode.
    pub fn from_env() -> Result<StoreOptions, StoreError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Ok(StoreOptions {
            pg_sslmode: var(SSLMODE_ENV)
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| StoreError::Config(format!("{SSLMODE_ENV}: {e}")))?,
            pg_sslrootcert: var(SSLROOTCERT_ENV),
            ..StoreOptions::default()
        })
    }
}

/// Rebuilds a URL from the parsed parts that are safe to log: user, hosts, ports, database.
fn redacted_url(pg: &tokio_postgres::Config) -> String {
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(dir) => dir.display().to_string(),
            };
            // A single port applies to every host; otherwise ports pair up with hosts.
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    let user = pg.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = pg.get_dbname().or(pg.get_user()).unwrap_or("");
    format!("postgres://{user}{hosts}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_hides_password() {
        let cfg = StoreConfig::Postgres {
            url: "postgres://game:s3cret@db.internal:6543/asobi?sslmode=verify-full&sslrootcert=/ca.pem"
                .into(),
            pool_size: 4,
        };
        let text = cfg.describe();
        assert_eq!(text, "postgresql (postgres://game@db.internal:6543/asobi)");
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn describe_defaults_and_sqlite() {
        let cfg = StoreConfig::Postgres {
            url: "postgres://postgres@127.0.0.1/x".into(),
            pool_size: 1,
        };
        assert_eq!(
            cfg.describe(),
            "postgresql (postgres://postgres@127.0.0.1:5432/x)"
        );
        let bad = StoreConfig::Postgres {
            url: "postgres://a:b@h:notaport/x".into(),
            pool_size: 1,
        };
        assert_eq!(bad.describe(), "postgresql (unparsable url)");
        let sqlite = StoreConfig::Sqlite {
            path: "./data/asobi.db".into(),
        };
        assert_eq!(sqlite.describe(), "sqlite (./data/asobi.db)");
    }
}
