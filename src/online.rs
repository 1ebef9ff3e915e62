//! The online service as the plugin sees it: its address and the
//! reachability probe. (The full API client follows with the online service.)

use std::net::IpAddr;
use std::time::Duration;
use thiserror::Error;

/// The address used when the host does not give one. Replace at build time
/// with the environment variable `OD_DEFAULT_SERVICE_URL`.
pub(crate) const DEFAULT_SERVICE_URL: &str = match option_env!("OD_DEFAULT_SERVICE_URL") {
    Some(url) => url,
    None => "https://online.online-desktop.example",
};

/// How long the reachability probe may take in all.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
/// `http://` to a loopback address only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl(reqwest::Url);

impl ServiceUrl {
    pub fn parse(text: &str) -> Result<ServiceUrl, ServiceUrlError> {
        let url = reqwest::Url::parse(text.trim())
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

    /// The address of an API path such as `api/v1/health`.
    pub fn join(&self, path: &str) -> reqwest::Url {
        let mut url = self.0.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Why the online service is not reachable, in words for the user.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Builds the HTTP client the plugin uses for the online service.
pub fn http_client() -> Result<reqwest::Client, Unreachable> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(PROBE_TIMEOUT)
        .https_only(false)
        .user_agent(concat!("online-desktop-plugin/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Unreachable(format!(
                "the add-on could not prepare its network connection: {e}"
            ))
        })
}

/// Asks the service's health endpoint whether it is up.
pub async fn probe(client: &reqwest::Client, service: &ServiceUrl) -> Result<(), Unreachable> {
    let url = service.join("api/v1/health");
    let response = client.get(url).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            "it did not answer in time"
        } else if e.is_connect() {
            "no connection could be made"
        } else {
            "the connection failed"
        };
        Unreachable(format!(
            "The online service at {} cannot be reached from this computer: {why}. Check the internet \
             connection and any firewall or proxy, then check again.",
            service.as_str()
        ))
    })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(Unreachable(format!(
            "The online service at {} answered with an error ({}). It may be down for maintenance; try again later.",
            service.as_str(),
            response.status()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_to_loopback() {
        assert!(ServiceUrl::parse("https://online.example.com").is_ok());
        assert!(ServiceUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(ServiceUrl::parse("http://[::1]:8080/").is_ok());
        assert!(ServiceUrl::parse("http://localhost:1").is_ok());
        assert_eq!(
            ServiceUrl::parse("http://10.0.0.5"),
            Err(ServiceUrlError::PlaintextToRemote("http://10.0.0.5".into()))
        );
        assert!(matches!(
            ServiceUrl::parse("ftp://x"),
            Err(ServiceUrlError::NotAnAddress(_))
        ));
        assert!(matches!(
            ServiceUrl::parse("not a url"),
            Err(ServiceUrlError::NotAnAddress(_))
        ));
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

    #[test]
    fn default_address_is_valid() {
        assert!(ServiceUrl::parse(DEFAULT_SERVICE_URL).is_ok());
    }
}
