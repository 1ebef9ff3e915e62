//! The address of the online service, checked before any connection: `https://`
//! anywhere, plain `http://` only to this computer (loopback).

use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// Why an address cannot be used for the online service. The texts are for
/// the bookkeeper who typed or configured the address.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ServiceUrlError {
    #[error(
        "the online service address \"{0}\" is not a web address (it must start with https://)"
    )]
    NotAnAddress(String),
    #[error(
        "the online service address \"{0}\" uses plain http:// to another computer; only https:// is allowed there, \
         so that passwords and company data are encrypted"
    )]
    PlaintextToRemote(String),
}

/// A validated base address of the online service: `https://` anywhere, or
/// `http://` to a loopback address only (127.0.0.0/8, `::1`, `localhost`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl(url::Url);

impl ServiceUrl {
    pub fn parse(text: &str) -> Result<ServiceUrl, ServiceUrlError> {
        let url = url::Url::parse(text.trim())
            .map_err(|_| ServiceUrlError::NotAnAddress(text.to_owned()))?;
        if url.host_str().is_none() {
            return Err(ServiceUrlError::NotAnAddress(text.to_owned()));
        }
        match url.scheme() {
            "https" => Ok(ServiceUrl(url)),
            "http" if is_loopback(&url) => Ok(ServiceUrl(url)),
            "http" => Err(ServiceUrlError::PlaintextToRemote(text.to_owned())),
            _ => Err(ServiceUrlError::NotAnAddress(text.to_owned())),
        }
    }

    /// The address of an API path such as `api/v1/health`, below any path
    /// the base address has.
    pub fn join(&self, path: &str) -> url::Url {
        let mut url = self.0.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the service runs on this computer.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.0)
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere() {
        for ok in [
            "https://online.example.com",
            "https://10.0.0.5:8443/od",
            "https://[2001:db8::1]/",
            "  https://online.example.com/  ",
        ] {
            assert!(ServiceUrl::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080/",
            "http://localhost:1",
            "http://LOCALHOST",
        ] {
            let url = ServiceUrl::parse(ok).unwrap();
            assert!(url.is_loopback(), "{ok}");
        }
        for remote in [
            "http://10.0.0.5",
            "http://128.0.0.1",
            "http://online.example.com",
            "http://localhost.example.com",
            "http://[::2]",
            "http://0.0.0.0",
        ] {
            assert_eq!(
                ServiceUrl::parse(remote),
                Err(ServiceUrlError::PlaintextToRemote(remote.into())),
                "{remote}"
            );
        }
    }

    #[test]
    fn other_schemes_and_non_addresses_are_refused() {
        for bad in ["ftp://x", "not a url", "", "file:///etc/passwd", "https://"] {
            assert!(
                matches!(
                    ServiceUrl::parse(bad),
                    Err(ServiceUrlError::NotAnAddress(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_refusal_explains_itself_to_a_bookkeeper() {
        let message = ServiceUrl::parse("http://online.example.com")
            .unwrap_err()
            .to_string();
        assert!(message.contains("only https:// is allowed"), "{message}");
        assert!(message.contains("encrypted"), "{message}");
    }

    #[test]
    fn join_keeps_a_base_path() {
        let url = ServiceUrl::parse("https://h.example/od/").unwrap();
        assert_eq!(
            url.join("api/v1/health").as_str(),
            "https://h.example/od/api/v1/health"
        );
        let url = ServiceUrl::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            url.join("api/v1/health").as_str(),
            "http://127.0.0.1:9/api/v1/health"
        );
    }
}
