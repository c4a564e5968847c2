//! What clients will refuse in a server's certificate, said once at start
//! (the server still starts): a CA's certificate used as a server's (what
//! `openssl req -x509` makes by default), one outside its dates, and one
//! whose names leave out the host the server is reached by. Read with
//! `x509-parser`; rustls decides the same things at each handshake.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

/// Why clients will refuse the certificate `der` of a server reached as
/// `hosts` (names; addresses are not checked), at `now`: each reason, in
/// words; none if nothing is wrong that this can see.
pub fn refusals(der: &[u8], hosts: &[&str], now: ASN1Time) -> Vec<String> {
    let certificate = match X509Certificate::from_der(der) {
        Ok((_, certificate)) => certificate,
        Err(error) => return vec![format!("it cannot be read as X.509 ({error})")],
    };
    let mut reasons = Vec::new();
    if certificate.is_ca() {
        reasons.push(
            "it is a CA certificate (basicConstraints CA:TRUE), which clients refuse as a \
             server's: make it with basicConstraints=critical,CA:FALSE, or sign one with it \
             (see the README, TLS)"
                .to_string(),
        );
    }
    let validity = certificate.validity();
    if now > validity.not_after {
        reasons.push(format!("it expired on {}", day(validity.not_after)));
    } else if now < validity.not_before {
        reasons.push(format!(
            "it is not valid until {}",
            day(validity.not_before)
        ));
    }
    let names = dns_names(&certificate);
    for host in hosts {
        if host.parse::<IpAddr>().is_err() && !names.iter().any(|name| covers(name, host)) {
            let names = match names.is_empty() {
                true => "no name (no subjectAltName DNS entry)".to_string(),
                false => names.join(", "),
            };
            reasons.push(format!("it is not for {host}: it is for {names}"));
        }
    }
    reasons
}

/// The DNS names in the certificate's subjectAltName: what clients check.
fn dns_names(certificate: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(names)) = certificate.subject_alternative_name() else {
        return Vec::new();
    };
    let names = names.value.general_names.iter();
    names
        .filter_map(|name| match name {
            GeneralName::DNSName(name) => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

/// Whether the certificate name `name` (maybe `*.example.com`) covers
/// `host`, as clients match it: case aside, a wildcard stands for one label.
fn covers(name: &str, host: &str) -> bool {
    let (name, host) = (name.to_ascii_lowercase(), host.to_ascii_lowercase());
    let host = host.strip_suffix('.').unwrap_or(&host);
    match name.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == host,
    }
}

fn day(time: ASN1Time) -> String {
    time.to_datetime().date().to_string()
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn names_cover_hosts_as_clients_match_them() {
        assert!(covers("localhost", "LocalHost"));
        assert!(covers("*.example.com", "chat.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("example.com", "chat.example.com"));
    }
}
