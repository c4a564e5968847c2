//! TLS for both programs (rustls, with the `ring` provider): the server's
//! certificate and key from PEM files, the client's trusted roots (the
//! system's, or one PEM file's), and the name a server is checked against.
//! Wrapping a socket is left to the server's accept and the client's
//! connect; this module makes their configurations, says what is wrong
//! with a certificate clients will refuse ([`certificate`]), and words
//! handshake failures ([`explain`]).

pub mod certificate;
pub mod explain;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

/// `chat-server --tls-cert FILE --tls-key FILE`.
#[derive(Clone, Debug)]
pub struct ServerFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of the certificate, in PKCS#8, PKCS#1 or SEC1.
    pub key: PathBuf,
}

/// The server's TLS configuration from its PEM files: a missing or
/// unreadable file, a file with nothing usable in it and a key that does
/// not belong to the certificate are each one error naming the file.
pub fn server_config(files: &ServerFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = certificates(&files.cert, "TLS certificate")?;
    let key_pem = read(&files.key, "TLS key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|error| match error {
            pem::Error::NoItemsFound => anyhow!("no private key in it"),
            error => anyhow!("not PEM ({error})"),
        })
        .with_context(|| format!("reading the TLS key {}", files.key.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the TLS key {} does not go with the certificate {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// One warning line if clients will refuse the server's certificate (see
/// [`certificate::refusals`]) when they reach it as `hosts`.
pub fn certificate_warning(files: &ServerFiles, hosts: &[&str]) -> anyhow::Result<Option<String>> {
    let certs = certificates(&files.cert, "TLS certificate")?;
    let now = x509_parser::time::ASN1Time::now();
    let reasons = certs
        .first()
        .map(|first| certificate::refusals(first, hosts, now))
        .unwrap_or_default();
    Ok((!reasons.is_empty()).then(|| {
        format!(
            "clients will refuse the TLS certificate {}: {}",
            files.cert.display(),
            reasons.join("; ")
        )
    }))
}

/// The client's TLS configuration: it trusts the certificates in `ca` (a
/// CA, or the server's own certificate) if given, else the system's roots.
/// There is no way to trust a server without checking it.
pub fn client_config(ca: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path, "TLS CA file")? {
                roots
                    .add(cert)
                    .with_context(|| format!("the TLS CA file {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_string(), ToString::to_string);
                bail!("loading the system's trusted certificates: {why}; give one with --tls-ca");
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS version as people write it: `TLS 1.3`.
pub fn version_name(version: Option<tokio_rustls::rustls::ProtocolVersion>) -> &'static str {
    use tokio_rustls::rustls::ProtocolVersion;
    match version {
        Some(ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "TLS",
    }
}

/// The name the server's certificate must hold, and that is sent as SNI:
/// a DNS name or an IP address (an IP address is checked but not sent).
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string())
        .map_err(|_| format!("{name:?} is not a DNS name or an IP address"))
}

/// rustls with `ring`, named rather than left to the process default, so a
/// dependency that brings another provider changes nothing here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Every certificate in the PEM file at `path`; at least one.
fn certificates(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow!("not PEM ({error})"))
        .and_then(|certs| match certs.is_empty() {
            true => Err(anyhow!("no certificate in it")),
            false => Ok(certs),
        })
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    Ok(certs)
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}
