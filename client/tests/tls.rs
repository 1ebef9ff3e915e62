//! Certificate verification is always on: a self-signed service is refused
//! unless its certificate is configured as an extra root.

mod support;

use od_abi::OD_RESULT_SERVICE_UNREACHABLE;
use od_client::{Client, ClientConfig, ClientError, ConfigError, ServiceUrl, UnreachableCause};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTPS health endpoint on 127.0.0.1 with a fresh self-signed
/// certificate for that address.
struct TlsService {
    url: ServiceUrl,
    certificate_pem: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsService {
    async fn start() -> TlsService {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            ServiceUrl::parse(&format!("https://{}", listener.local_addr().unwrap())).unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let mut buffer = [0u8; 4096];
                        let _ = tls.read(&mut buffer).await;
                        let body = r#"{"status": "ok", "version": "0.0.1"}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                             Connection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(answer.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            }
        });
        TlsService {
            url,
            certificate_pem: certified.cert.pem(),
            connections,
            task,
        }
    }
}

impl Drop for TlsService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_certificate_no_root_vouches_for_is_refused_and_not_retried() {
    let service = TlsService::start().await;
    let timer = FakeTimer::new();
    let error = client(&service.url, retries(4), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ClientError::Unreachable {
            service: service.url.to_string(),
            cause: UnreachableCause::Tls
        }
    );
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNREACHABLE);
    assert!(error.to_string().contains("certificate"), "{error}");
    assert_eq!(service.connections.load(Ordering::SeqCst), 1);
    assert!(timer.sleeps().is_empty());
}

#[tokio::test]
async fn an_extra_root_certificate_is_trusted() {
    let service = TlsService::start().await;
    let timer = FakeTimer::new();
    let config = ClientConfig {
        extra_root_certificate: Some(service.certificate_pem.clone().into_bytes()),
        ..config(retries(1), &timer)
    };
    let health = Client::new(service.url.clone(), config)
        .unwrap()
        .health()
        .await
        .unwrap();
    assert_eq!(health.status, "ok");
}

#[tokio::test]
async fn an_extra_root_certificate_that_is_not_one_is_a_configuration_error() {
    let url = ServiceUrl::parse("https://127.0.0.1:9").unwrap();
    for pem in [&b"not a certificate"[..], b""] {
        let config = ClientConfig {
            extra_root_certificate: Some(pem.to_vec()),
            ..ClientConfig::default()
        };
        assert!(matches!(
            Client::new(url.clone(), config),
            Err(ConfigError::Certificate)
        ));
    }
}
