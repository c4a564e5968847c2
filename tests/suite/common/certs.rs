//! Certificates made at test time (rcgen): a CA, a server certificate it
//! signs for `localhost` and `127.0.0.1`, and a second CA that signs
//! nothing, each in a PEM file of a directory removed at the end; on
//! request, server certificates that clients refuse ([`Refused`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustls_pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

pub struct Certs {
    dir: PathBuf,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// The server's certificate and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A CA that did not sign it.
    pub other_ca: PathBuf,
    /// A key that does not go with `cert`.
    pub other_key: PathBuf,
    /// The CA's key, and what signs with it.
    ca_key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// What is wrong with a server certificate that clients refuse.
#[derive(Clone, Copy, Debug)]
pub enum Refused {
    /// The CA's own certificate, `CA:TRUE`.
    CaAsServer,
    /// Valid in 2020 only.
    Expired,
    /// Valid from 2099 only.
    NotYetValid,
    /// For `other.example` only.
    OtherName,
}

impl Certs {
    pub fn make() -> Certs {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "chat-tls-test-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("making the certificates' directory");
        let (ca_pem, issuer) = make_ca("chat test CA");
        let ca_key = issuer.key().serialize_pem();
        let (other_ca_pem, _) = make_ca("another CA");
        let key = KeyPair::generate().expect("a key");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).expect("valid names");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).expect("signing");
        let other_key = KeyPair::generate().expect("a key");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("writing a PEM file");
            path
        };
        Certs {
            ca: write("ca.pem", ca_pem),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            other_ca: write("other-ca.pem", other_ca_pem),
            other_key: write("other-key.pem", other_key.serialize_pem()),
            ca_key: write("ca-key.pem", ca_key),
            issuer,
            dir,
        }
    }

    /// A certificate clients refuse as `refused` says, with its key, as
    /// `--tls-cert CERT --tls-key KEY`.
    pub fn refused_args(&self, refused: Refused) -> Vec<String> {
        let (cert, key) = match refused {
            Refused::CaAsServer => (self.ca.clone(), self.ca_key.clone()),
            _ => {
                let names = match refused {
                    Refused::OtherName => vec!["other.example".to_string()],
                    _ => vec!["localhost".to_string(), "127.0.0.1".to_string()],
                };
                let mut params = CertificateParams::new(names).expect("valid names");
                match refused {
                    Refused::Expired => {
                        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
                    }
                    Refused::NotYetValid => {
                        params.not_before = rcgen::date_time_ymd(2099, 1, 1);
                        params.not_after = rcgen::date_time_ymd(2100, 1, 1);
                    }
                    _ => {}
                }
                let key = KeyPair::generate().expect("a key");
                let cert = params.signed_by(&key, &self.issuer).expect("signing");
                let name = format!("{refused:?}").to_lowercase();
                let cert_path = self.dir.join(format!("{name}.pem"));
                let key_path = self.dir.join(format!("{name}-key.pem"));
                std::fs::write(&cert_path, cert.pem()).expect("writing a PEM file");
                std::fs::write(&key_path, key.serialize_pem()).expect("writing a PEM file");
                (cert_path, key_path)
            }
        };
        vec![
            "--tls-cert".to_string(),
            path(&cert),
            "--tls-key".to_string(),
            path(&key),
        ]
    }

    /// `--tls-cert CERT --tls-key KEY`, for the server.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_string(),
            path(&self.cert),
            "--tls-key".to_string(),
            path(&self.key),
        ]
    }
}

/// A self-signed CA named `name`, as PEM, and what signs with it.
fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::new()).expect("no names");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("a key");
    let cert = params.self_signed(&key).expect("self-signing");
    (cert.pem(), Issuer::new(params, key))
}

/// A path as a command-line argument.
pub fn path(path: &Path) -> String {
    path.to_str()
        .expect("temporary paths are UTF-8")
        .to_string()
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS connection made in the test, trusting `ca`, with a receive buffer
/// of `receive_buffer` bytes if given (a reader the server must wait for).
pub async fn tls_connect(
    address: SocketAddr,
    ca: &std::path::Path,
    receive_buffer: Option<u32>,
) -> TlsStream<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = super::within("connecting", socket.connect(address))
        .await
        .unwrap();
    let config = chat::tls::client_config(Some(ca)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    super::within(
        "the handshake",
        TlsConnector::from(config).connect(name, stream),
    )
    .await
    .expect("the handshake succeeds")
}
