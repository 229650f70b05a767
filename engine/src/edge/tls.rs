//! TLS with rustls (ring provider): loading the configured certificate for HTTPS and WSS on the
//! main port, and the handshake with its timeout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A client that does not finish its handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a PEM chain and key into a server config that offers HTTP/1.1.
pub(crate) fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = load(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The same certificate for QUIC: TLS 1.3 only, with the asobi ALPN.
pub(crate) fn quic_server_config(
    cert: &Path,
    key: &Path,
    alpn: &[u8],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = load(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .context("TLS 1.3")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("certificate and key do not match")?;
    config.alpn_protocols = vec![alpn.to_vec()];
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

type Loaded = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn load(cert: &Path, key: &Path) -> anyhow::Result<Loaded> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    Ok((chain, key))
}

/// A self-signed certificate for `localhost`, written into `dir` as `dev-cert.pem` and
/// `dev-key.pem`; returns their paths and the certificate's SHA-256 fingerprint.
pub(crate) fn dev_cert(
    dir: &Path,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf, String)> {
    use sha2::{Digest, Sha256};
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .context("generating a dev certificate")?;
    std::fs::create_dir_all(dir)?;
    let cert_path = dir.join("dev-cert.pem");
    let key_path = dir.join("dev-key.pem");
    std::fs::write(&cert_path, generated.cert.pem())?;
    write_private_key(&key_path, generated.key_pair.serialize_pem().as_bytes())?;
    let fingerprint = Sha256::digest(generated.cert.der())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok((cert_path, key_path, fingerprint))
}

/// Runs the server handshake; `None` when it fails or times out (the client is dropped).
pub(crate) async fn accept<S>(
    acceptor: &futures_rustls::TlsAcceptor,
    stream: S,
) -> Option<futures_rustls::server::TlsStream<S>>
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let handshake = acceptor.accept(stream).fuse();
    let timer = glommio::timer::sleep(HANDSHAKE_TIMEOUT).fuse();
    futures::pin_mut!(handshake, timer);
    futures::select_biased! {
        r = handshake => match r {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!("TLS handshake failed: {e}");
                None
            }
        },
        () = timer => None,
    }
}

/// Writes a private key readable by its owner only (0600), whatever the process umask.
fn write_private_key(path: &Path, pem: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An older file keeps its mode through `open`: tighten it explicitly.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(pem)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dev_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_cert, key, _) = super::dev_cert(dir.path()).unwrap();
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
