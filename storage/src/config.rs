//! Which database to use and how to name it in logs without leaking credentials.

use std::path::PathBuf;

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
        /// A libpq-style URL, e.g. `postgres://user:pass@host:5432/db?options=-csearch_path%3Dgame`.
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
            StoreConfig::Postgres { url, .. } => match url.parse::<tokio_postgres::Config>() {
                Ok(pg) => format!("postgresql ({})", redacted_url(&pg)),
                Err(_) => "postgresql (unparsable url)".to_owned(),
            },
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
            url: "postgres://game:s3cret@db.internal:6543/asobi?sslmode=disable".into(),
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
