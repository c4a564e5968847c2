//! TLS failures in words, with what to do: the common ones each have their
//! sentence; any other keeps the library's name for it after a sentence.
//! Used for the client's error line and the server's log line.

use std::io;

use tokio_rustls::rustls::{AlertDescription, CertificateError, Error};
use x509_parser::time::ASN1Time;

/// What to ask of a server that does not seem to speak TLS.
const IS_IT_TLS: &str = "is it started with --tls-cert?";

/// Why the client's handshake with a server failed, checking `name`.
pub fn client_failure(error: &io::Error, name: &str) -> String {
    let Some(error) = rustls_error(error) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                format!("the server closed the connection during the TLS handshake: {IS_IT_TLS}")
            }
            _ => error.to_string(),
        };
    };
    match error {
        Error::InvalidCertificate(certificate) => certificate_failure(certificate, name),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            format!("the server answered in something that is not TLS: {IS_IT_TLS}")
        }
        Error::AlertReceived(alert) => {
            format!("the server refused the TLS handshake (it sent {alert:?})")
        }
        error => format!("the TLS handshake failed: {error}"),
    }
}

/// Why a client's handshake with this server failed, for the log.
pub fn server_failure(error: &io::Error) -> String {
    let Some(error) = rustls_error(error) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the client closed before the handshake was done".into()
            }
            _ => error.to_string(),
        };
    };
    match error {
        Error::AlertReceived(
            alert @ (AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired),
        ) => format!(
            "the client refused this server's certificate (it sent {alert:?}); see the warning \
             at start, or give the client the CA with --tls-ca"
        ),
        Error::AlertReceived(alert) => {
            format!("the client ended the handshake (it sent {alert:?})")
        }
        Error::PeerIncompatible(why) => {
            format!("the client has no TLS version or cipher in common with this server ({why:?})")
        }
        Error::InvalidMessage(why) => {
            format!("the client sent something that is not TLS ({why:?})")
        }
        error => format!("the TLS handshake failed: {error}"),
    }
}

/// The sentence for a server certificate the client refused.
fn certificate_failure(error: &CertificateError, name: &str) -> String {
    match error {
        CertificateError::UnknownIssuer => "the server's certificate is not signed by a CA this \
                                            client trusts (give it with --tls-ca FILE)"
            .to_string(),
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "the server's certificate is not for {name}: it is for {} (connect by one of those \
             names, or check one with --tls-server-name NAME)",
            presented
                .iter()
                .map(|name| plain_name(name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        CertificateError::NotValidForName => format!(
            "the server's certificate is not for {name} (check another name with \
             --tls-server-name NAME)"
        ),
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "the server's certificate expired on {} (the server needs a new one)",
            date(not_after.as_secs())
        ),
        CertificateError::Expired => {
            "the server's certificate has expired (the server needs a new one)".to_string()
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid until {} (is this machine's clock right?)",
            date(not_before.as_secs())
        ),
        CertificateError::NotValidYet => "the server's certificate is not valid yet (is this \
                                          machine's clock right?)"
            .to_string(),
        CertificateError::Other(other) if is_ca_as_end_entity(other) => {
            "the server's certificate is a CA's (CA:TRUE), which no client accepts as a server's: \
             the server needs a certificate signed by that CA"
                .to_string()
        }
        error => format!("the server's certificate was refused: {error}"),
    }
}

/// A name as rustls presents it (`DnsName("localhost")`,
/// `IpAddress(127.0.0.1)`), as people write it.
fn plain_name(presented: &str) -> &str {
    let inner = presented
        .strip_prefix("DnsName(")
        .or_else(|| presented.strip_prefix("IpAddress("))
        .and_then(|inner| inner.strip_suffix(')'));
    match inner {
        Some(inner) => inner.trim_matches('"'),
        None => presented,
    }
}

fn is_ca_as_end_entity(other: &tokio_rustls::rustls::OtherError) -> bool {
    matches!(
        other.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// The rustls error inside an I/O error from a handshake, if it is one.
fn rustls_error(error: &io::Error) -> Option<&Error> {
    error.get_ref()?.downcast_ref::<Error>()
}

/// A time in seconds since 1970 as a date, `2026-12-03`.
fn date(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| ASN1Time::from_timestamp(seconds).ok())
        .map_or_else(
            || format!("{seconds} s after 1970"),
            |time| time.to_datetime().date().to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::plain_name;

    #[test]
    fn presented_names_are_written_as_people_write_them() {
        assert_eq!(plain_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("something else"), "something else");
    }
}
