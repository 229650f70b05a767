//! TLS to PostgreSQL: libpq's `sslmode` / `sslrootcert` semantics on rustls (ring provider).
//!
//! tokio-postgres itself knows only disable / prefer / require and rejects the other libpq
//! parameters, so they are taken out of the URL here, resolved against [`StoreOptions`], and
//! turned into a tokio-postgres mode plus a rustls certificate policy:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | disable | never | – |
//! | prefer (default) | if the server offers it | no |
//! | require | always | no; against `sslrootcert` if one is given (as libpq does) |
//! | verify-ca | always | chain against `sslrootcert` |
//! | verify-full | always | chain against `sslrootcert`, and the host name |

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{StoreError, StoreOptions};

/// libpq's `sslmode`, as accepted in the URL and in `ASOBI_DB_SSLMODE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without checking its certificate; plain otherwise.
    Prefer,
    /// TLS always; the certificate is checked only when a root certificate is given.
    Require,
    /// TLS always, the certificate chain checked against the root certificate.
    VerifyCa,
    /// TLS always, the chain and the server's host name checked.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // `allow` tries plain first; tokio-postgres cannot, and silently weakening or
            // strengthening a setting is worse than saying no.
            other => {
                return Err(format!(
                    "unknown sslmode {other:?} (disable, prefer, require, verify-ca, verify-full)"
                ))
            }
        })
    }
}

/// Where trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RootCert {
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`, as in libpq 16).
    System,
}

/// How one connection is secured: what tokio-postgres is told, and how rustls checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsPolicy {
    pub(crate) mode: SslMode,
    root: Option<RootCert>,
}

impl TlsPolicy {
    /// The URL's parameters win over the options, as libpq's win over `PGSSLMODE`.
    fn resolve(url_params: TlsParams, options: &StoreOptions) -> Result<TlsPolicy, StoreError> {
        let mode = match url_params.sslmode {
            Some(text) => text
                .parse()
                .map_err(|e| StoreError::Config(format!("postgres url: {e}")))?,
            None => options.pg_sslmode.unwrap_or(SslMode::Prefer),
        };
        let root = url_params
            .sslrootcert
            .or_else(|| options.pg_sslrootcert.clone())
            .map(|r| match r.as_str() {
                "system" => RootCert::System,
                _ => RootCert::File(PathBuf::from(r)),
            });
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root.is_none() {
            return Err(StoreError::Config(
                "sslmode verify-ca / verify-full needs sslrootcert (a PEM file, or `system`)"
                    .to_owned(),
            ));
        }
        Ok(TlsPolicy { mode, root })
    }

    /// The mode tokio-postgres negotiates with; certificate checks happen in rustls.
    pub(crate) fn wire_mode(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    fn check(&self) -> Check {
        match (self.mode, &self.root) {
            (SslMode::VerifyFull, _) => Check::Full,
            (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        }
    }

    /// The rustls connector for this policy (also built for `disable`, where it is never used).
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Config(format!("tls: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.check() {
            Check::Nothing => Arc::new(EncryptOnly(provider)),
            check => {
                let roots = self.load_roots()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| StoreError::Config(format!("sslrootcert: {e}")))?;
                if check == Check::Full {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    fn load_roots(&self) -> Result<RootCertStore, StoreError> {
        let mut roots = RootCertStore::empty();
        match &self.root {
            None => {}
            Some(RootCert::System) => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(StoreError::Config(
                        "sslrootcert=system: no usable certificate in the system store".to_owned(),
                    ));
                }
            }
            Some(RootCert::File(path)) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        StoreError::Config(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(StoreError::Config(format!(
                        "sslrootcert {}: no usable certificate",
                        path.display()
                    )));
                }
            }
        }
        Ok(roots)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    Full,
}

/// The TLS parameters taken out of a URL, still as text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

/// Splits `sslmode` and `sslrootcert` off a `postgres://` URL's query and returns the rest,
/// which tokio-postgres can parse. Other connection strings are returned unchanged.
pub(crate) fn split_tls_params(url: &str) -> Result<(String, TlsParams), StoreError> {
    let mut params = TlsParams::default();
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let Some((base, query)) = url.split_once('?').filter(|_| is_url) else {
        return Ok((url.to_owned(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => params.sslmode = Some(percent_decode(value)?),
            "sslrootcert" => params.sslrootcert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

/// Parses `url` into a tokio-postgres config and the TLS policy it asks for.
pub(crate) fn parse(
    url: &str,
    options: &StoreOptions,
) -> Result<(tokio_postgres::Config, TlsPolicy), StoreError> {
    let (rest, params) = split_tls_params(url)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| StoreError::Config(format!("postgres url: {e}")))?;
    let policy = TlsPolicy::resolve(params, options)?;
    config.ssl_mode(policy.wire_mode());
    Ok((config, policy))
}

fn percent_decode(text: &str) -> Result<String, StoreError> {
    let bad = || StoreError::Config(format!("postgres url: bad percent-encoding in {text:?}"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// `prefer` / `require` without a root certificate: the link is encrypted but the server is not
/// authenticated, exactly as libpq does. The handshake signatures are still checked, so the
/// session is bound to whatever key the server presented.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full WebPKI check except the host name. rustls checks the name only after
/// the chain is valid, so a name mismatch is the one error forgiven here.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(url: &str, options: &StoreOptions) -> Result<TlsPolicy, StoreError> {
        parse(url, options).map(|(_, p)| p)
    }

    #[test]
    fn split_keeps_other_parameters() {
        let (rest, params) = split_tls_params(
            "postgres://u@h/db?application_name=x&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u@h/db?application_name=x&connect_timeout=3"
        );
        assert_eq!(params.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let (rest, params) = split_tls_params("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), params.sslmode.as_deref()),
            ("postgres://u@h/db", Some("require"))
        );
        let (rest, params) = split_tls_params("host=h user=u").unwrap();
        assert_eq!(
            (rest.as_str(), params),
            ("host=h user=u", TlsParams::default())
        );
        assert!(split_tls_params("postgres://h/db?sslrootcert=%zz").is_err());
    }

    #[test]
    fn url_wins_over_options_and_prefer_is_the_default() {
        let none = StoreOptions::default();
        let env = StoreOptions {
            pg_sslmode: Some(SslMode::Require),
            ..StoreOptions::default()
        };
        let p = policy("postgres://h/db", &none).unwrap();
        assert_eq!((p.mode, p.check()), (SslMode::Prefer, Check::Nothing));
        assert_eq!(p.wire_mode(), tokio_postgres::config::SslMode::Prefer);
        assert_eq!(
            policy("postgres://h/db", &env).unwrap().mode,
            SslMode::Require
        );
        let p = policy("postgres://h/db?sslmode=disable", &env).unwrap();
        assert_eq!(p.wire_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn verification_follows_libpq() {
        let mut opts = StoreOptions::default();
        // Without a CA, verify modes cannot work: refuse instead of silently not verifying.
        for mode in ["verify-ca", "verify-full"] {
            let err = policy(&format!("postgres://h/db?sslmode={mode}"), &opts).unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{err:?}");
        }
        opts.pg_sslrootcert = Some("/ca.pem".into());
        let check = |url: &str| policy(url, &opts).unwrap().check();
        assert_eq!(check("postgres://h/db?sslmode=prefer"), Check::Nothing);
        assert_eq!(check("postgres://h/db?sslmode=require"), Check::Chain);
        assert_eq!(check("postgres://h/db?sslmode=verify-ca"), Check::Chain);
        assert_eq!(check("postgres://h/db?sslmode=verify-full"), Check::Full);
        let p = policy(
            "postgres://h/db?sslmode=verify-full&sslrootcert=system",
            &opts,
        )
        .unwrap();
        assert_eq!(p.root, Some(RootCert::System));
        assert_eq!(p.wire_mode(), tokio_postgres::config::SslMode::Require);
        assert!(matches!(
            policy("postgres://h/db?sslmode=allow", &opts),
            Err(StoreError::Config(_))
        ));
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_config_error() {
        let mut opts = StoreOptions {
            pg_sslrootcert: Some("/nonexistent/ca.pem".into()),
            ..StoreOptions::default()
        };
        let p = policy("postgres://h/db?sslmode=verify-full", &opts).unwrap();
        assert!(matches!(p.connector(), Err(StoreError::Config(_))));
        let dir = std::env::temp_dir().join(format!("asobi-empty-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        opts.pg_sslrootcert = Some(dir.display().to_string());
        let p = policy("postgres://h/db?sslmode=verify-ca", &opts).unwrap();
        assert!(matches!(p.connector(), Err(StoreError::Config(_))));
        let _ = std::fs::remove_file(&dir);
        // No verification needs no CA.
        assert!(
            policy("postgres://h/db?sslmode=require", &StoreOptions::default())
                .unwrap()
                .connector()
                .is_ok()
        );
    }
}
