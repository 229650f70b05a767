//! Command line and environment: every flag has an `ASOBI_*` variable with the same meaning,
//! using asobi's names where asobi has one. Defaults run out of the box: port 8080, game dir
//! `./lua`, one shard per core, SQLite under `./data`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The asobi-rs game backend.
#[derive(Parser)]
#[command(name = "asobi", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Copy players (profile, ban, password, linked providers) from an asobi database.
    Import {
        /// The asobi PostgreSQL URL.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Compile every script of a game directory and report errors with file:line.
    Check {
        /// The game directory (defaults to ASOBI_GAME_DIR or ./lua).
        #[arg(env = "ASOBI_GAME_DIR", default_value = "./lua")]
        game_dir: PathBuf,
    },
}

#[derive(Clone, Args)]
pub(crate) struct ServeArgs {
    /// HTTP and WebSocket port.
    #[arg(long, env = "ASOBI_PORT", default_value_t = 8080)]
    pub(crate) port: u16,
    /// Address to bind.
    #[arg(long, env = "ASOBI_BIND", default_value = "0.0.0.0")]
    pub(crate) bind: IpAddr,
    /// Directory holding match.lua or config.lua.
    #[arg(long, env = "ASOBI_GAME_DIR", default_value = "./lua")]
    pub(crate) game_dir: PathBuf,
    /// Number of shards (executor threads); 0 means one per core.
    #[arg(long, env = "ASOBI_SHARDS", default_value_t = 0)]
    pub(crate) shards: usize,
    /// Hot reload of the game directory: `off`, or on for any other value (asobi: `auto`).
    #[arg(long, env = "ASOBI_LUA_RELOAD", default_value = "on", value_parser = parse_toggle)]
    pub(crate) lua_reload: Toggle,
    /// Largest inbound WebSocket frame in bytes.
    #[arg(long, env = "ASOBI_WS_MAX_FRAME", default_value_t = 64 * 1024)]
    pub(crate) ws_max_frame: usize,
    /// Messages per second a connection may send (0 disables the limit).
    #[arg(long, env = "ASOBI_WS_MSG_RATE", default_value_t = 60)]
    pub(crate) ws_msg_rate: u32,
    /// WebSocket connections per second accepted from one IP (0 disables the limit).
    #[arg(long, env = "ASOBI_WS_CONNECT_RATE", default_value_t = 60)]
    pub(crate) ws_connect_rate: u32,
    /// Milliseconds a new socket has to send session.connect.
    #[arg(long, env = "ASOBI_WS_CONNECT_TIMEOUT_MS", default_value_t = 10_000)]
    pub(crate) ws_connect_timeout_ms: u64,
    /// Frames queued for one client before it is disconnected as too slow.
    #[arg(long, env = "ASOBI_WS_OUTBOX", default_value_t = 1024)]
    pub(crate) ws_outbox: usize,
    /// Milliseconds a dropped player keeps its match seat before `leave` runs, for modes
    /// without their own `reconnect = { grace_period = … }`. 0 (asobi's behaviour): a
    /// disconnect is a leave.
    #[arg(long, env = "ASOBI_RECONNECT_GRACE_MS", default_value_t = 0)]
    pub(crate) reconnect_grace_ms: u64,
    /// Access token lifetime in seconds.
    #[arg(long, env = "ASOBI_ACCESS_TOKEN_TTL", default_value_t = 3600)]
    pub(crate) access_ttl_secs: u64,
    /// Refresh token lifetime in seconds.
    #[arg(long, env = "ASOBI_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    pub(crate) refresh_ttl_secs: u64,
    /// Seconds a queued matchmaker ticket waits before it expires.
    #[arg(long, env = "ASOBI_MATCHMAKER_MAX_WAIT", default_value_t = 60)]
    pub(crate) matchmaker_max_wait_secs: u64,
    /// Tickets one mode's queue may hold.
    #[arg(long, env = "ASOBI_MATCHMAKER_MAX_QUEUE", default_value_t = 100_000)]
    pub(crate) matchmaker_max_queue: usize,
    /// Instruction budget of one Lua callback.
    #[arg(long, env = "ASOBI_LUA_MAX_INSTRUCTIONS")]
    pub(crate) lua_max_instructions: Option<u64>,
    /// Running time of every Lua callback, in milliseconds (sets all the per-callback
    /// limits below at once).
    #[arg(long, env = "ASOBI_LUA_MAX_CALL_MS")]
    pub(crate) lua_max_call_ms: Option<u64>,
    /// Running time of `tick`, in milliseconds (asobi: 500).
    #[arg(long, env = "ASOBI_LUA_TICK_MS")]
    pub(crate) lua_tick_ms: Option<u64>,
    /// Running time of `join` and `leave`, in milliseconds (asobi: 200).
    #[arg(long, env = "ASOBI_LUA_JOIN_MS")]
    pub(crate) lua_join_ms: Option<u64>,
    /// Running time of `get_state`, in milliseconds (asobi: 100).
    #[arg(long, env = "ASOBI_LUA_GET_STATE_MS")]
    pub(crate) lua_get_state_ms: Option<u64>,
    /// Time slice after which a long callback yields to the shard, in milliseconds (0: off).
    #[arg(long, env = "ASOBI_LUA_SLICE_MS")]
    pub(crate) lua_slice_ms: Option<u64>,
    /// How long one `game.*` service call may wait for its answer, in milliseconds.
    #[arg(long, env = "ASOBI_LUA_SERVICE_WAIT_MS")]
    pub(crate) lua_service_wait_ms: Option<u64>,
    /// Consecutive failures of one callback after which a match's script is stopped and the
    /// match finishes with an error (unset: never, as in asobi).
    #[arg(long, env = "ASOBI_LUA_STOP_AFTER_FAILURES")]
    pub(crate) lua_stop_after_failures: Option<u32>,
    /// Consecutive budget overruns after which a match's script is stopped and the match
    /// finishes with an error (unset: never, as in asobi).
    #[arg(long, env = "ASOBI_LUA_STOP_AFTER_OVERRUNS")]
    pub(crate) lua_stop_after_overruns: Option<u32>,
    /// Memory limit of one match's Lua VM, in MiB.
    #[arg(long, env = "ASOBI_LUA_MAX_MEMORY_MB")]
    pub(crate) lua_max_memory_mb: Option<usize>,
    /// Forward script errors to the player whose input caused them (module.error).
    #[arg(long, env = "ASOBI_DEV_ERRORS", default_value_t = false)]
    pub(crate) dev_errors: bool,
    /// PEM certificate chain; with --tls-key the main port serves HTTPS and WSS only.
    #[arg(long, env = "ASOBI_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ASOBI_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// UDP port of the QUIC transport (on when a certificate is configured or with --dev-cert).
    #[arg(long, env = "ASOBI_QUIC_PORT", default_value_t = 8443)]
    pub(crate) quic_port: u16,
    /// Generate a self-signed certificate for QUIC (development only; printed with its fingerprint).
    #[arg(long, env = "ASOBI_DEV_CERT", default_value_t = false)]
    pub(crate) dev_cert: bool,
    /// Connections the whole process serves at once (0: no cap). Past it new connections are
    /// closed at once, so the ones already served keep their file descriptors and memory.
    #[arg(long, env = "ASOBI_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub(crate) max_connections: usize,
    /// Milliseconds one write to a client may take; a client that stops reading is dropped after
    /// it instead of holding its socket and buffers.
    #[arg(long, env = "ASOBI_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub(crate) write_timeout_ms: u64,
    /// Boards clients may submit scores to over REST: `all`, or a comma-separated list of board
    /// ids (asobi's `leaderboard_client_submit`; none by default).
    #[arg(long, env = "ASOBI_LEADERBOARD_CLIENT_SUBMIT", default_value = "", value_parser = crate::services::leaderboards::parse_client_submit)]
    pub(crate) leaderboard_client_submit: crate::services::leaderboards::ClientSubmit,
    /// Per-board settings as JSON: `{"weekly": {"order": "desc", "operator": "best", "reset":
    /// "weekly"}}`; `"*"` names the default for every other board.
    #[arg(long, env = "ASOBI_LEADERBOARDS", value_parser = crate::services::leaderboards::parse_boards)]
    pub(crate) leaderboards: Option<
        std::sync::Arc<std::collections::HashMap<String, asobi_rules::leaderboards::BoardConfig>>,
    >,
    /// Shards one world's zones are spread over when its script sets no `world_shards`: a
    /// count, or `all` (1: each world on one shard, as asobi keeps a world on one node).
    #[arg(long, env = "ASOBI_WORLD_SHARDS", default_value = "1", value_parser = parse_world_shards)]
    pub(crate) world_shards: usize,
    /// Boards kept in memory at once (asobi's `leaderboard_max_boards`).
    #[arg(long, env = "ASOBI_LEADERBOARD_MAX_BOARDS", default_value_t = 1000)]
    pub(crate) leaderboard_max_boards: usize,
    /// Secret for guest device verifiers; guest auth is off without it.
    /// Origins allowed to call the REST API from a browser (comma-separated, or `*`).
    #[arg(long, env = "ASOBI_CORS_ORIGINS")]
    pub(crate) cors_origins: Option<String>,
    /// Fewest characters a password may have (asobi's rule is 8; at most 128 always).
    #[arg(long, env = "ASOBI_PASSWORD_MIN_LENGTH", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=128))]
    pub(crate) password_min_len: u16,
    #[arg(long, env = "ASOBI_GUEST_VERIFIER_PEPPER", hide_env_values = true)]
    pub(crate) guest_pepper: Option<String>,
    #[command(flatten)]
    pub(crate) accounts: crate::services::accounts::config::AccountArgs,
    #[command(flatten)]
    pub(crate) db: DbArgs,
    #[command(flatten)]
    pub(crate) ops: crate::services::ops::settings::OpsArgs,
}

/// `on` / `off` switches. asobi reads `ASOBI_LUA_RELOAD` as "`off` disables, any other value
/// means on" (`auto`, `true`, `on`, ...), and so does [`parse_toggle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Toggle {
    On,
    Off,
}

/// `off` (any case) is off; every other value is on, as asobi reads it.
pub(crate) fn parse_toggle(value: &str) -> Result<Toggle, std::convert::Infallible> {
    Ok(if value.trim().eq_ignore_ascii_case("off") {
        Toggle::Off
    } else {
        Toggle::On
    })
}

#[derive(Clone, Args)]
pub(crate) struct DbArgs {
    /// Directory for the SQLite database and the generated token secret.
    #[arg(long, env = "ASOBI_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,
    /// PostgreSQL host; when set (or ASOBI_DATABASE_URL is), PostgreSQL replaces SQLite.
    #[arg(long, env = "ASOBI_DB_HOST")]
    pub(crate) db_host: Option<String>,
    /// PostgreSQL port.
    #[arg(long, env = "ASOBI_DB_PORT", default_value_t = 5432)]
    pub(crate) db_port: u16,
    /// PostgreSQL database.
    #[arg(long, env = "ASOBI_DB_NAME", default_value = "asobi")]
    pub(crate) db_name: String,
    /// PostgreSQL user.
    #[arg(long, env = "ASOBI_DB_USER", default_value = "postgres")]
    pub(crate) db_user: String,
    /// PostgreSQL password.
    #[arg(long, env = "ASOBI_DB_PASSWORD", hide_env_values = true)]
    pub(crate) db_password: Option<String>,
    /// Full PostgreSQL URL; wins over the ASOBI_DB_* parts.
    #[arg(long, env = "ASOBI_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// PostgreSQL connections in the pool.
    #[arg(long, env = "ASOBI_DB_POOL", default_value_t = 8)]
    pub(crate) db_pool: usize,
}

impl DbArgs {
    pub(crate) fn store_config(&self) -> asobi_storage::StoreConfig {
        if let Some(url) = &self.database_url {
            return asobi_storage::StoreConfig::Postgres {
                url: url.clone(),
                pool_size: self.db_pool,
            };
        }
        if let Some(host) = &self.db_host {
            let mut url = format!("postgres://{}", encode_userinfo(&self.db_user));
            if let Some(pw) = &self.db_password {
                url.push(':');
                url.push_str(&encode_userinfo(pw));
            }
            url.push_str(&format!("@{}:{}/{}", host, self.db_port, self.db_name));
            return asobi_storage::StoreConfig::Postgres {
                url,
                pool_size: self.db_pool,
            };
        }
        asobi_storage::StoreConfig::Sqlite {
            path: self.data_dir.join("asobi.db"),
        }
    }
}

/// Percent-encodes the characters that would break a URL's user-info part.
fn encode_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl ServeArgs {
    pub(crate) fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// What the services read of the configuration.
    pub(crate) fn settings(&self) -> crate::services::Settings {
        crate::services::Settings {
            ws_max_frame: self.ws_max_frame,
            ws_msg_rate: self.ws_msg_rate,
            ws_connect_timeout_ms: self.ws_connect_timeout_ms,
            ws_outbox: self.ws_outbox,
            reconnect_grace_ms: self.reconnect_grace_ms,
            matchmaker_max_wait_secs: self.matchmaker_max_wait_secs,
            matchmaker_max_queue: self.matchmaker_max_queue,
            dev_errors: self.dev_errors,
            guest_pepper: self.guest_pepper.clone(),
            write_timeout_ms: self.write_timeout_ms,
            leaderboards: crate::services::leaderboards::Config {
                client_submit: self.leaderboard_client_submit.clone(),
                boards: self.leaderboards.clone().unwrap_or_default(),
                max_boards: self.leaderboard_max_boards,
            },
            password_min_len: usize::from(self.password_min_len),
            cors_origins: self
                .cors_origins
                .as_deref()
                .map(crate::services::cors::parse_origins)
                .unwrap_or_default(),
            accounts: self.accounts.config(),
            world_shards: self.world_shards,
        }
    }

    pub(crate) fn budgets(&self) -> asobi_script::Budgets {
        let mut b = asobi_script::Budgets::default();
        if let Some(n) = self.lua_max_instructions {
            b.instructions = n;
        }
        if let Some(ms) = self.lua_max_call_ms {
            b.wall = Duration::from_millis(ms);
            b.limits = asobi_script::CallbackLimits::all(b.wall);
        }
        let ms = Duration::from_millis;
        if let Some(n) = self.lua_tick_ms {
            b.limits.tick = ms(n);
        }
        if let Some(n) = self.lua_join_ms {
            b.limits.join_leave = ms(n);
        }
        if let Some(n) = self.lua_get_state_ms {
            b.limits.get_state = ms(n);
        }
        if let Some(n) = self.lua_slice_ms {
            b.slice = ms(n);
        }
        if let Some(n) = self.lua_service_wait_ms {
            b.service_wait = ms(n);
        }
        if let Some(n) = self.lua_stop_after_failures {
            b.max_consecutive_failures = n.max(1);
        }
        if let Some(n) = self.lua_stop_after_overruns {
            b.max_consecutive_overruns = n.max(1);
        }

        if let Some(mb) = self.lua_max_memory_mb {
            b.memory_bytes = mb * 1024 * 1024;
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_shards_is_a_count_or_all() {
        assert_eq!(parse_world_shards("all"), Ok(0));
        assert_eq!(parse_world_shards("3"), Ok(3));
        assert_eq!(parse_world_shards("100000"), Ok(64));
        assert!(parse_world_shards("0").is_err());
        assert!(parse_world_shards("many").is_err());
    }

    #[test]
    fn db_parts_build_a_url_with_escaped_password() {
        let cli = Cli::parse_from([
            "asobi",
            "migrate",
            "--db-host",
            "db",
            "--db-password",
            "p@ss:w/rd",
            "--db-name",
            "game",
        ]);
        let Some(Command::Migrate(db)) = cli.command else {
            panic!("expected migrate");
        };
        match db.store_config() {
            asobi_storage::StoreConfig::Postgres { url, .. } => {
                assert_eq!(url, "postgres://postgres:p%40ss%3Aw%2Frd@db:5432/game")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_are_sqlite_and_8080() {
        let cli = Cli::parse_from(["asobi"]);
        assert_eq!(cli.serve.port, 8080);
        assert!(matches!(
            cli.serve.db.store_config(),
            asobi_storage::StoreConfig::Sqlite { .. }
        ));
    }
}

/// Debug output of the configuration never shows a secret: the guest pepper, the database
/// password and URL (which may carry the password) are redacted.
impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("game_dir", &self.game_dir)
            .field("shards", &self.shards)
            .field("settings", &self.settings())
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DbArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("DbArgs")
            .field("data_dir", &self.data_dir)
            .field("db_host", &self.db_host)
            .field("db_port", &self.db_port)
            .field("db_name", &self.db_name)
            .field("db_user", &self.db_user)
            .field("db_password", &hidden(&self.db_password))
            .field("database_url", &hidden(&self.database_url))
            .field("db_pool", &self.db_pool)
            .finish()
    }
}

#[cfg(test)]
mod redaction {
    use clap::Parser;

    #[test]
    fn debug_output_has_no_secrets() {
        let cli = super::Cli::parse_from([
            "asobi",
            "serve",
            "--guest-pepper",
            "pepper-pepper-pepper-pepper-pepper-1",
            "--db-password",
            "hunter2-db",
            "--database-url",
            "postgres://u:hunter3@h/db",
        ]);
        let Some(super::Command::Serve(args)) = cli.command else {
            panic!("serve parsed");
        };
        let shown = format!("{args:?}");
        for secret in ["pepper-pepper", "hunter2", "hunter3"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("redacted"));
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    /// asobi's compose files set `ASOBI_LUA_RELOAD=auto`; only `off` turns reload off.
    #[test]
    fn lua_reload_accepts_asobis_values() {
        for (value, want) in [
            ("auto", Toggle::On),
            ("true", Toggle::On),
            ("on", Toggle::On),
            ("off", Toggle::Off),
            ("OFF", Toggle::Off),
        ] {
            let cli = Cli::try_parse_from(["asobi", "serve", "--lua-reload", value])
                .unwrap_or_else(|e| panic!("{value}: {e}"));
            let Some(Command::Serve(args)) = cli.command else {
                panic!("expected serve");
            };
            assert_eq!(args.lua_reload, want, "{value}");
        }
    }
}

/// `ASOBI_WORLD_SHARDS`: a count of shards or `all` (kept as 0).
fn parse_world_shards(v: &str) -> Result<usize, String> {
    match v.trim() {
        "all" => Ok(0),
        n => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(asobi_rules::worlds::MAX_WORLD_SHARDS))
            .ok_or_else(|| format!("expected a number of shards or `all`, got {v:?}")),
    }
}
