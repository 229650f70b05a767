//! Credentials: access tokens (HS256 JWTs), refresh tokens (random, stored only as a hash,
//! single-use and rotating), password hashes (argon2id) and guest device verifiers.
//!
//! Nothing here does I/O except [`Tokens::load`], which reads or creates the signing secret at
//! start-up. Hashing is CPU-heavy on purpose; callers run it on the storage bridge's blocking pool
//! so a shard keeps serving while a password is checked.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    typ: String,
    /// Token id, so logout can end this one token (absent in tokens from older builds).
    #[serde(default)]
    jti: String,
    /// Issue time in milliseconds, compared with a player's revocation cut-off.
    #[serde(default)]
    ims: i64,
}

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) player_id: String,
    /// The token's id (empty for tokens minted before ids existed).
    pub(crate) token_id: String,
    /// Issue time, unix ms.
    pub(crate) issued_ms: i64,
    /// Expiry, unix ms.
    pub(crate) expires_ms: i64,
}

/// Issues and checks tokens.
pub(crate) struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

/// A refresh token as handed to the client, and the hash that is stored.
pub(crate) struct RefreshToken {
    pub(crate) token: String,
    pub(crate) hash: String,
    pub(crate) expires_at_ms: i64,
}

/// Shortest secret accepted from `ASOBI_JWT_SECRET`: HS256 keys shorter than the hash are weak.
const MIN_SECRET_BYTES: usize = 32;

impl Tokens {
    /// Uses `ASOBI_JWT_SECRET`, or a secret generated once and kept in `data_dir/jwt_secret`.
    pub(crate) fn load(
        secret: Option<&str>,
        data_dir: &Path,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> anyhow::Result<Tokens> {
        let secret: Vec<u8> = match secret {
            Some(s) if s.len() >= MIN_SECRET_BYTES => s.as_bytes().to_vec(),
            Some(_) => anyhow::bail!("ASOBI_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"),
            None => {
                let path = data_dir.join("jwt_secret");
                match std::fs::read_to_string(&path) {
                    Ok(text) if text.trim().len() >= MIN_SECRET_BYTES => {
                        tracing::warn!(path = %path.display(), "ASOBI_JWT_SECRET is not set; using the secret generated earlier in the data dir");
                        text.trim().as_bytes().to_vec()
                    }
                    _ => {
                        let mut raw = [0u8; 48];
                        rand::rng().fill_bytes(&mut raw);
                        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
                        std::fs::create_dir_all(data_dir)
                            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
                        write_private(&path, &text)?;
                        tracing::warn!(path = %path.display(), "ASOBI_JWT_SECRET is not set; generated a token secret and stored it in the data dir (set ASOBI_JWT_SECRET in production)");
                        text.into_bytes()
                    }
                }
            }
        };
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Tokens {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            access_ttl,
            refresh_ttl,
        })
    }

    pub(crate) fn issue_access(&self, player_id: &str) -> String {
        self.issue_access_after(player_id, 0)
    }

    /// An access token issued strictly after `not_before_ms`, so a token minted in the same
    /// millisecond as a revocation (a password change answering with a fresh pair) survives it.
    pub(crate) fn issue_access_after(&self, player_id: &str, not_before_ms: i64) -> String {
        let ims = now_ms().max(not_before_ms + 1);
        let now = (ims / 1000) as u64;
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let claims = Claims {
            sub: player_id.to_owned(),
            iat: now,
            exp: now + self.access_ttl.as_secs(),
            typ: "access".into(),
            jti: hex(&id),
            ims,
        };
        // Encoding HS256 with a valid key cannot fail.
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding).unwrap_or_default()
    }

    /// The player id of a valid, unexpired access token.
    #[cfg(test)]
    pub(crate) fn verify_access(&self, token: &str) -> Option<String> {
        self.decode_access(token).map(|a| a.player_id)
    }

    /// What a valid, unexpired access token says. Revocation is checked by the caller, against
    /// its shard's copy of the revocations (`accounts::access`).
    pub(crate) fn decode_access(&self, token: &str) -> Option<Access> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        (c.typ == "access").then(|| Access {
            issued_ms: if c.ims > 0 {
                c.ims
            } else {
                c.iat as i64 * 1000
            },
            expires_ms: c.exp as i64 * 1000,
            player_id: c.sub,
            token_id: c.jti,
        })
    }

    /// How long an access token lives.
    pub(crate) fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    pub(crate) fn new_refresh(&self) -> RefreshToken {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        RefreshToken {
            hash: hash_refresh(&token),
            token,
            expires_at_ms: now_ms() + self.refresh_ttl.as_millis() as i64,
        }
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Refresh tokens are 256 random bits, so a fast hash is enough: nothing to brute-force.
pub(crate) fn hash_refresh(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// argon2id with OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC-format argon2id hash. CPU-heavy: call off the shard.
pub(crate) fn hash_password(password: &str) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

/// Checks a password against a stored hash. CPU-heavy: call off the shard.
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// asobi's password hashes (nova_auth): `$pbkdf2-sha256$<iterations>$<salt b64>$<key b64>`.
const ASOBI_PBKDF2: &str = "$pbkdf2-sha256$";

/// The most PBKDF2 iterations an imported hash may ask for; asobi writes 100,000 (nova_auth's
/// default is 600,000). A crafted row cannot make one login cost minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// Whether a stored hash is asobi's (imported) and must be replaced by ours after a login.
pub(crate) fn needs_rehash(hash: &str) -> bool {
    hash.starts_with(ASOBI_PBKDF2)
}

/// Checks a password against an imported asobi hash, in constant time.
fn verify_asobi_pbkdf2(password: &str, hash: &str) -> bool {
    use base64::engine::general_purpose::STANDARD;
    let Some(rest) = hash.strip_prefix(ASOBI_PBKDF2) else {
        return false;
    };
    let mut parts = rest.split('$');
    let (Some(iter), Some(salt), Some(key), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(iterations) = iter
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))
        .and_then(std::num::NonZeroU32::new)
    else {
        return false;
    };
    let (Ok(salt), Ok(key)) = (STANDARD.decode(salt), STANDARD.decode(key)) else {
        return false;
    };
    if key.is_empty() || key.len() > 64 {
        return false;
    }
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &key,
    )
    .is_ok()
}

/// Checks a password against a stored hash of either kind: ours (argon2id) or one imported
/// from asobi (PBKDF2-SHA256). CPU-heavy: call off the shard.
pub(crate) fn verify_any(password: &str, hash: &str) -> bool {
    if needs_rehash(hash) {
        verify_asobi_pbkdf2(password, hash)
    } else {
        verify_password(password, hash)
    }
}

/// A hash that [`verify_password`] can run against when the user does not exist, so a login for
/// an unknown name takes as long as one with a wrong password.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

/// Username rules: 3–32 characters of letters, digits, `_`, `-`, `.`.
pub(crate) fn check_username(name: &str) -> Result<(), &'static str> {
    if !(3..=32).contains(&name.chars().count()) {
        return Err("username must be 3 to 32 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err("username may contain only letters, digits, '_', '-' and '.'");
    }
    Ok(())
}

/// Password rules: `min`–128 characters (`min` is `ASOBI_PASSWORD_MIN_LENGTH`, asobi's 8 by
/// default). The message names the rule and the setting, so a refusal explains itself.
pub(crate) fn check_password(password: &str, min: usize) -> Result<(), String> {
    let n = password.chars().count();
    if n < min {
        Err(format!(
            "password must be at least {min} characters (ASOBI_PASSWORD_MIN_LENGTH)"
        ))
    } else if n > 128 {
        Err("password must be at most 128 characters".into())
    } else {
        Ok(())
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Guest device verifiers: `salt$mac` where mac = HMAC-SHA256(pepper, salt || device_secret).
/// The pepper never reaches the database, so a stolen table of verifiers is useless alone.
pub(crate) fn guest_verifier(pepper: &[u8], device_secret: &[u8]) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = hex(&salt);
    format!("{salt}${}", guest_mac(pepper, &salt, device_secret))
}

pub(crate) fn check_guest_verifier(pepper: &[u8], verifier: &str, device_secret: &[u8]) -> bool {
    if let Some(imported) = verifier.strip_prefix("asobi$") {
        return check_asobi_verifier(pepper, imported, device_secret);
    }
    let Some((salt, mac)) = verifier.split_once('$') else {
        return false;
    };
    let expected = guest_mac(pepper, salt, device_secret);
    // Constant-time comparison of equal-length hex strings.
    expected.len() == mac.len()
        && expected
            .bytes()
            .zip(mac.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A device imported from asobi (`asobi import`) keeps asobi's verifier, `<base64 salt>$<base64
/// mac>` with mac = HMAC-SHA256(pepper, raw salt || device secret); it verifies when our pepper
/// is the one asobi used.
fn check_asobi_verifier(pepper: &[u8], verifier: &str, device_secret: &[u8]) -> bool {
    use base64::engine::general_purpose::STANDARD;
    let Some((salt, mac)) = verifier.split_once('$') else {
        return false;
    };
    let (Ok(salt), Ok(mac)) = (STANDARD.decode(salt), STANDARD.decode(mac)) else {
        return false;
    };
    let Ok(mut expected) = HmacSha256::new_from_slice(pepper) else {
        return false;
    };
    expected.update(&salt);
    expected.update(device_secret);
    // verify_slice compares in constant time.
    expected.verify_slice(&mac).is_ok()
}

fn guest_mac(pepper: &[u8], salt: &str, secret: &[u8]) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(pepper) else {
        return String::new();
    };
    mac.update(salt.as_bytes());
    mac.update(secret);
    hex(&mac.finalize().into_bytes())
}

/// Decodes a device secret sent as base64 (standard or URL-safe, padded or not).
pub(crate) fn decode_device_secret(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text.trim()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(dir: &Path) -> Tokens {
        Tokens::load(None, dir, Duration::from_secs(60), Duration::from_secs(600)).unwrap()
    }

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(dir.path());
        let tok = t.issue_access("p1");
        assert_eq!(t.verify_access(&tok).as_deref(), Some("p1"));
        let mut bad = tok.clone();
        bad.pop();
        assert_eq!(t.verify_access(&bad), None);
        assert_eq!(t.verify_access("garbage"), None);
        // The generated secret persists: a second load accepts the first one's tokens.
        let again = tokens(dir.path());
        assert_eq!(again.verify_access(&tok).as_deref(), Some("p1"));
        // A different secret does not.
        let other = Tokens::load(
            Some(&"x".repeat(40)),
            dir.path(),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(other.verify_access(&tok), None);
        assert!(Tokens::load(Some("short"), dir.path(), Duration::ZERO, Duration::ZERO).is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("secret123").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("secret123", &h));
        assert!(!verify_password("secret124", &h));
        assert!(!verify_password("secret123", "not a hash"));
    }

    #[test]
    fn asobi_pbkdf2_hashes_verify() {
        use base64::engine::general_purpose::STANDARD;
        let salt = b"0123456789abcdef";
        let mut key = [0u8; 32];
        let iterations = std::num::NonZeroU32::new(1000).unwrap();
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            b"old-password",
            &mut key,
        );
        let h = format!(
            "$pbkdf2-sha256$1000${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(key)
        );
        assert!(needs_rehash(&h));
        assert!(verify_any("old-password", &h));
        assert!(!verify_any("old-passwore", &h));
        assert!(!verify_any("old-password", &h.replace("$1000$", "$1001$")));
        assert!(!verify_any("x", "$pbkdf2-sha256$99999999999$AA==$AA=="));
        assert!(!verify_any("x", "$pbkdf2-sha256$1000$!!$AA=="));
        let ours = hash_password("new-password").unwrap();
        assert!(!needs_rehash(&ours));
        assert!(verify_any("new-password", &ours));
    }

    #[test]
    fn rules() {
        assert!(check_username("player1").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username("has space").is_err());
        assert!(check_password("short", 8).is_err());
        assert!(check_password("long enough", 8).is_ok());
        assert!(check_password("hunter2", 6).is_ok());
        assert!(check_password("hunter2", 8)
            .unwrap_err()
            .contains("at least 8 characters"));
    }

    #[test]
    fn imported_asobi_guest_verifiers() {
        use base64::engine::general_purpose::STANDARD;
        let pepper = b"pepper-pepper-pepper-pepper-pepper";
        let salt = [3u8; 16];
        let mut mac = HmacSha256::new_from_slice(pepper).unwrap();
        mac.update(&salt);
        mac.update(b"secret");
        let v = format!(
            "asobi${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(mac.finalize().into_bytes())
        );
        assert!(check_guest_verifier(pepper, &v, b"secret"));
        assert!(!check_guest_verifier(pepper, &v, b"secreT"));
        assert!(!check_guest_verifier(
            b"other-pepper-other-pepper-other-p",
            &v,
            b"secret"
        ));
        for bad in [
            "asobi$",
            "asobi$not base64$x",
            "asobi$AAAA",
            "asobi$AAAA$AAAA",
        ] {
            assert!(!check_guest_verifier(pepper, bad, b"secret"), "{bad}");
        }
    }

    #[test]
    fn guest_verifiers() {
        let v = guest_verifier(b"pepper-pepper-pepper-pepper-pepper", b"secret");
        assert!(check_guest_verifier(
            b"pepper-pepper-pepper-pepper-pepper",
            &v,
            b"secret"
        ));
        assert!(!check_guest_verifier(
            b"pepper-pepper-pepper-pepper-pepper",
            &v,
            b"secreT"
        ));
        assert!(!check_guest_verifier(
            b"other-pepper-other-pepper-other-p",
            &v,
            b"secret"
        ));
        assert_eq!(decode_device_secret("AAEC").unwrap(), vec![0, 1, 2]);
    }
}
