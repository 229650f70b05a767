//! The ops plane's settings: asobi's `ASOBI_OPS_SECRET(_FILE)` and `ASOBI_CONSOLE*` variables,
//! and the drain deadline. Flattened into the server's flags by `node::config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::OpsConfig;

#[derive(Clone, Args)]
pub(crate) struct OpsArgs {
    /// The operator secret for `/api/v1/ops/*` and the console (every ops route answers 403
    /// until one is set).
    #[arg(long, env = "ASOBI_OPS_SECRET", hide_env_values = true)]
    pub(crate) ops_secret: Option<String>,
    /// A file holding the operator secret; beats ASOBI_OPS_SECRET and never falls back to it.
    #[arg(long, env = "ASOBI_OPS_SECRET_FILE")]
    pub(crate) ops_secret_file: Option<PathBuf>,
    /// Serve the operator console at /console: `1`, `true`, `yes` or `on`.
    #[arg(long, env = "ASOBI_CONSOLE", default_value = "false")]
    pub(crate) console: String,
    /// Names this deployment in the console.
    #[arg(long, env = "ASOBI_CONSOLE_LABEL")]
    pub(crate) console_label: Option<String>,
    /// Marks a deployment to be careful in (the console colours its label).
    #[arg(long, env = "ASOBI_CONSOLE_PRODUCTION", default_value = "false")]
    pub(crate) console_production: String,
    /// Seconds a drain (SIGTERM) lets running matches go on before ending them.
    #[arg(long, env = "ASOBI_DRAIN_TIMEOUT_SECS", default_value_t = 25)]
    pub(crate) drain_timeout_secs: u64,
}

/// asobi's truthy values; anything else, a typo included, is off.
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The secret as asobi resolves it: a named file wins and never falls back to the variable; a
/// missing, unreadable or empty file leaves the secret unset (logged), and one trailing newline
/// is stripped.
fn resolve_secret(args: &OpsArgs) -> Option<String> {
    if let Some(path) = &args.ops_secret_file {
        return match std::fs::read_to_string(path) {
            Ok(text) => {
                let s = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text);
                if s.is_empty() {
                    tracing::error!(event = "ops_secret_file_empty", path = %path.display(), "the ops secret file is empty; the ops plane stays closed");
                    None
                } else {
                    Some(s.to_owned())
                }
            }
            Err(e) => {
                tracing::error!(event = "ops_secret_file_unreadable", path = %path.display(), "cannot read the ops secret file ({e}); the ops plane stays closed");
                None
            }
        };
    }
    args.ops_secret.clone().filter(|s| !s.is_empty())
}

impl OpsArgs {
    pub(crate) fn config(&self) -> OpsConfig {
        let secret = resolve_secret(self);
        let mut console = truthy(&self.console);
        if console && secret.is_none() {
            tracing::error!(
                event = "console_disabled_without_credential",
                "ASOBI_CONSOLE is on but no ops secret is set; the console stays off"
            );
            console = false;
        } else if console {
            tracing::info!(event = "console_enabled", "operator console at /console");
        }
        OpsConfig {
            secret,
            console,
            label: self.console_label.clone().filter(|l| !l.is_empty()),
            production: truthy(&self.console_production),
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(secret: Option<&str>, file: Option<PathBuf>, console: &str) -> OpsArgs {
        OpsArgs {
            ops_secret: secret.map(str::to_owned),
            ops_secret_file: file,
            console: console.into(),
            console_label: None,
            console_production: "false".into(),
            drain_timeout_secs: 1,
        }
    }

    #[test]
    fn a_file_beats_the_variable_and_never_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = args(Some("from-env"), Some(file), "on").config();
        assert_eq!(c.secret.as_deref(), Some("from-file"));
        assert!(c.console);
        let missing = args(Some("from-env"), Some(dir.path().join("nope")), "on").config();
        assert_eq!(missing.secret, None);
        assert!(!missing.console, "no credential: the console stays off");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert_eq!(args(Some("x"), Some(empty), "no").config().secret, None);
        assert!(!args(Some("x"), None, "tru").config().console);
    }
}
