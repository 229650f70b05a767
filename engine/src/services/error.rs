//! Where service errors meet the wire: every typed error a service returns becomes asobi's
//! `{code, message, details}` with its HTTP status here, and nowhere else.

use asobi_schema::error::code;
use asobi_schema::ApiError;
use asobi_storage::StoreError;

/// Maps a storage failure to what a client sees; the cause goes to the log.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(why) => {
            tracing::warn!("storage unavailable: {why}");
            ApiError::new(
                503,
                code::STORAGE_UNAVAILABLE,
                "The database is unavailable; try again shortly.",
            )
        }
        other => {
            tracing::error!("storage error: {other}");
            ApiError::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every code a client can see comes from the registry in `asobi_schema::error::code`:
    /// no handler spells one as a string literal.
    #[test]
    fn every_client_visible_code_is_in_the_registry() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![root];
        let mut offenders = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("ApiError::new(") {
                    let args = &text[i + "ApiError::new(".len()..];
                    let second = args.split(',').nth(1).unwrap_or("").trim_start();
                    if second.starts_with('"') {
                        offenders.push(format!("{}: {}", path.display(), &args[..args.len().min(60)]));
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "codes outside the registry: {offenders:#?}");
    }
}
