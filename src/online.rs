//! The online service as the plugin sees it: its address and the client
//! settings of the reachability probe. The API client itself is the
//! `od-client` crate (docs/adr/0006-online-client-crate.md).

use od_client::{Client, ClientConfig, ClientError, RetryPolicy, UnreachableCause};
use std::time::Duration;

pub use od_client::ServiceUrl;

/// The address used when the host does not give one. Replace at build time
/// with the environment variable `OD_DEFAULT_SERVICE_URL`.
pub(crate) const DEFAULT_SERVICE_URL: &str = match option_env!("OD_DEFAULT_SERVICE_URL") {
    Some(url) => url,
    None => "https://online.online-desktop.example",
};

/// How long the reachability probe may take in all, retries included.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

const USER_AGENT: &str = concat!("online-desktop-plugin/", env!("CARGO_PKG_VERSION"));

/// Asks the service's health endpoint whether it is up, within
/// [`PROBE_TIMEOUT`]. The error is the sentence the prerequisite row shows.
pub(crate) async fn probe(service: &ServiceUrl) -> Result<(), String> {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(3),
        request_timeout: PROBE_TIMEOUT,
        user_agent: USER_AGENT.to_owned(),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(1),
            max_total: PROBE_TIMEOUT,
        },
        ..ClientConfig::default()
    };
    let client = Client::new(service.clone(), config)
        .map_err(|e| format!("The add-on could not prepare its network connection: {e}."))?;
    match tokio::time::timeout(PROBE_TIMEOUT, client.health()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(ClientError::Unreachable { cause, .. })) => Err(unreachable(service, cause)),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(unreachable(service, UnreachableCause::Timeout)),
    }
}

/// Like the client's own text, but pointing at the row's "check again".
fn unreachable(service: &ServiceUrl, cause: UnreachableCause) -> String {
    format!(
        "The online service at {service} cannot be reached from this computer: {cause}. Check the internet \
         connection and any firewall or proxy, then check again."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_service_is_explained_with_what_to_check() {
        let service = ServiceUrl::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            unreachable(&service, UnreachableCause::Connect),
            "The online service at http://127.0.0.1:9/ cannot be reached from this computer: no connection \
             could be made. Check the internet connection and any firewall or proxy, then check again."
        );
    }

    #[test]
    fn default_address_is_valid() {
        assert!(ServiceUrl::parse(DEFAULT_SERVICE_URL).is_ok());
    }
}
