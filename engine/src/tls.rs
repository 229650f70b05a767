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
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
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
