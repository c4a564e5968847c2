//! Certificates made at test time (rcgen): a CA, a server certificate it
//! signs for `localhost` and `127.0.0.1`, and a second CA that signs
//! nothing, each in a PEM file of a directory removed at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

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
            dir,
        }
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
