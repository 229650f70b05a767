//! StoreKit 2 signed transactions, verified offline: a JWS (ES256) whose `x5c` header carries
//! the signing certificate chain `[leaf, intermediate, root]`. The chain must lead from the leaf
//! through the intermediate to a root the operator configured (the embedded root is never
//! trusted), be valid now, and the leaf's key must have made the signature. Only then is the
//! payload read; its `bundleId` must be ours.
//!
//! Failures are asobi's `details.reason` strings: `invalid_jws_format`, `invalid_jws`,
//! `unsupported_alg`, `invalid_x5c`, `chain_validation_failed`, `certificate_expired` (ours: asobi
//! reports it as a failed chain), `signature_invalid`, `bundle_id_mismatch`,
//! `apple_iap_not_configured`, `apple_root_cert_not_configured`, `apple_root_cert_invalid`,
//! `apple_root_cert_not_found`.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::Value;
use webpki::{EndEntityCert, KeyPurposeIdIter};

/// Largest signed transaction accepted (Apple's are a few KiB).
pub(crate) const MAX_JWS: usize = 64 * 1024;

/// What Apple verification needs: our bundle id and the roots we trust.
#[derive(Debug)]
pub(crate) struct AppleConfig {
    bundle_id: Option<String>,
    /// The roots, or why there are none (asobi's reason).
    roots: Result<Vec<CertificateDer<'static>>, &'static str>,
}

impl AppleConfig {
    /// `bundle_id` and the root certificate file (PEM, one or more, or DER).
    pub(crate) fn new(bundle_id: Option<String>, root_path: Option<&Path>) -> AppleConfig {
        let roots = match root_path {
            None => Err("apple_root_cert_not_configured"),
            Some(p) => match std::fs::read(p) {
                Err(_) => Err("apple_root_cert_not_found"),
                Ok(bytes) => decode_roots(&bytes),
            },
        };
        AppleConfig { bundle_id, roots }
    }

    /// From `ASOBI_APPLE_BUNDLE_ID` and `ASOBI_APPLE_ROOT_CERT_PATH`.
    pub(crate) fn from_env() -> AppleConfig {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = var("ASOBI_APPLE_ROOT_CERT_PATH");
        AppleConfig::new(var("ASOBI_APPLE_BUNDLE_ID"), path.as_deref().map(Path::new))
    }
}

fn decode_roots(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, &'static str> {
    let pem: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| "apple_root_cert_invalid")?;
    let roots = if pem.is_empty() {
        vec![CertificateDer::from(bytes.to_vec())]
    } else {
        pem
    };
    // Each must be usable as a trust anchor.
    for r in &roots {
        webpki::anchor_from_trusted_cert(r).map_err(|_| "apple_root_cert_invalid")?;
    }
    Ok(roots)
}

/// Apple's signing chain carries Apple's own extended key usages (or none); the chain to the
/// configured root is what vouches for it, so any EKU is accepted.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

const SIG_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
];

fn b64_json(part: &str) -> Result<Value, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "invalid_jws")?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| "invalid_jws")?;
    if v.is_object() {
        Ok(v)
    } else {
        Err("invalid_jws")
    }
}

/// DER for one unsigned big-endian integer.
fn der_int(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        &bytes[first..]
    };
    let mut out = vec![0x02];
    let pad = trimmed.first().is_some_and(|b| b & 0x80 != 0);
    out.push((trimmed.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

/// A JWS ES256 signature (`r || s`, 32 bytes each) as the DER `SEQUENCE { r, s }` webpki wants.
fn raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let (r, s) = raw.split_at(32);
    let mut body = der_int(r);
    body.extend(der_int(s));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    Some(out)
}

/// Verifies a signed transaction at `now_ms` and returns its payload.
pub(crate) fn verify(cfg: &AppleConfig, jws: &str, now_ms: i64) -> Result<Value, &'static str> {
    let payload = verify_jws(cfg, jws, now_ms)?;
    if payload.get("bundleId").and_then(Value::as_str) != cfg.bundle_id.as_deref() {
        return Err("bundle_id_mismatch");
    }
    Ok(payload)
}

/// Verifies any JWS Apple signs (a transaction, a server notification) and returns its
/// payload; the caller checks what the payload says.
pub(crate) fn verify_jws(cfg: &AppleConfig, jws: &str, now_ms: i64) -> Result<Value, &'static str> {
    if cfg.bundle_id.is_none() {
        return Err("apple_iap_not_configured");
    }
    let roots = cfg.roots.as_ref().map_err(|e| *e)?;
    if jws.len() > MAX_JWS {
        return Err("invalid_jws");
    }
    let parts: Vec<&str> = jws.split('.').collect();
    let [header_b64, payload_b64, sig_b64] = parts[..] else {
        return Err("invalid_jws_format");
    };
    let header = b64_json(header_b64)?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err("unsupported_alg");
    }
    let x5c: Vec<CertificateDer<'static>> = match header.get("x5c").and_then(Value::as_array) {
        Some(list) if list.len() == 3 => list
            .iter()
            .map(|c| {
                c.as_str()
                    .and_then(|s| STANDARD.decode(s).ok())
                    .map(CertificateDer::from)
                    .ok_or("invalid_x5c")
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("invalid_x5c"),
    };
    let anchors: Vec<_> = roots
        .iter()
        .filter_map(|r| webpki::anchor_from_trusted_cert(r).ok())
        .collect();
    let leaf = EndEntityCert::try_from(&x5c[0]).map_err(|_| "invalid_x5c")?;
    let now = UnixTime::since_unix_epoch(Duration::from_millis(u64::try_from(now_ms).unwrap_or(0)));
    // The embedded root (x5c[2]) is not offered: only a configured root can end the chain.
    leaf.verify_for_usage(SIG_ALGS, &anchors, &x5c[1..2], now, AnyUsage, None, None)
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
                "certificate_expired"
            }
            _ => "chain_validation_failed",
        })?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64.trim_end_matches('='))
        .map_err(|_| "signature_invalid")?;
    let der = raw_to_der(&sig).ok_or("signature_invalid")?;
    let signed = format!("{header_b64}.{payload_b64}");
    leaf.verify_signature(webpki::ring::ECDSA_P256_SHA256, signed.as_bytes(), &der)
        .map_err(|_| "signature_invalid")?;
    b64_json(payload_b64)
}

/// Our bundle id, if configured.
pub(crate) fn bundle_id(cfg: &AppleConfig) -> Option<&str> {
    cfg.bundle_id.as_deref()
}

/// A payload field as text (Apple's ids are strings; numbers are accepted too).
pub(crate) fn text(payload: &Value, key: &str) -> Option<String> {
    match payload.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_signatures_become_der() {
        let mut raw = [0u8; 64];
        raw[31] = 5;
        raw[32] = 0x80;
        let der = raw_to_der(&raw).unwrap();
        // SEQUENCE { INTEGER 5, INTEGER 0x0080... (33 bytes, padded) }
        assert_eq!(&der[..5], &[0x30, 3 + 35, 0x02, 1, 5]);
        assert_eq!(&der[5..8], &[0x02, 33, 0x00]);
        assert!(raw_to_der(&raw[..63]).is_none());
    }

    #[test]
    fn unconfigured_answers_asobis_reasons() {
        let none = AppleConfig::new(None, None);
        assert_eq!(verify(&none, "a.b.c", 0), Err("apple_iap_not_configured"));
        let no_root = AppleConfig::new(Some("com.x".into()), None);
        assert_eq!(
            verify(&no_root, "a.b.c", 0),
            Err("apple_root_cert_not_configured")
        );
        let missing = AppleConfig::new(Some("com.x".into()), Some(Path::new("/nonexistent/root")));
        assert_eq!(
            verify(&missing, "a.b.c", 0),
            Err("apple_root_cert_not_found")
        );
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("root.pem");
        std::fs::write(&junk, b"not a certificate").unwrap();
        let bad = AppleConfig::new(Some("com.x".into()), Some(&junk));
        assert_eq!(verify(&bad, "a.b.c", 0), Err("apple_root_cert_invalid"));
    }
}
