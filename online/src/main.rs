//! `online-desktop`: the Online Desktop online service. The work happens in
//! the `od_online` library; this reads the command line and environment.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use od_online::{Config, SecretString, Service, TlsFiles};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "online-desktop",
    version,
    about = "The Online Desktop online service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the online service (HTTP, or HTTPS with --tls-cert and --tls-key).
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI description of API v1.
    Openapi,
}

#[derive(Args)]
#[command(next_help_heading = "Service")]
struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8480", env = "OD_ONLINE_ADDR")]
    addr: SocketAddr,

    /// The SQLite database; created with its folder on first start.
    #[arg(
        long,
        default_value = "online-data/online.db",
        env = "OD_ONLINE_DATABASE"
    )]
    database: PathBuf,

    /// The address people reach the service at, used for links in mails
    /// (default: the listening address).
    #[arg(long, env = "OD_ONLINE_PUBLIC_URL")]
    public_url: Option<String>,

    /// Where mails are written as .eml files when no SMTP server is given.
    #[arg(long, default_value = "online-data/outbox", env = "OD_ONLINE_OUTBOX")]
    outbox: PathBuf,

    /// Send mails through this SMTP server: smtp://host:port,
    /// smtp://user:password@host:587?tls=required, smtps://host:465.
    #[arg(long, env = "OD_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,

    /// The sender of the service's mails.
    #[arg(long, default_value = od_online::config::DEFAULT_MAIL_FROM, env = "OD_MAIL_FROM")]
    mail_from: String,

    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, env = "OD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "OD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// A reverse proxy in front of the service, by IP address: for its
    /// requests the client is read from X-Forwarded-For. Repeat for several.
    #[arg(
        long = "trusted-proxy",
        env = "OD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<IpAddr>,
}

impl ServeArgs {
    fn into_config(self) -> Config {
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(certificate), Some(private_key)) => Some(TlsFiles {
                certificate,
                private_key,
            }),
            _ => None,
        };
        Config {
            database: self.database,
            public_url: self.public_url,
            outbox: self.outbox,
            smtp_url: self.smtp_url.map(SecretString::new),
            mail_from: self.mail_from,
            tls,
            trusted_proxies: self.trusted_proxies,
            ..Config::default()
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal; log files stay greppable.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Openapi => {
            print!("{}", od_online::api::openapi_text());
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let addr = args.addr;
    let config = args.into_config();
    if config.tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "serving plain HTTP on a non-loopback address: put a TLS proxy in front, or use \
             --tls-cert and --tls-key"
        );
    }
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another service using that port?)")
    })?;
    let service = Service::new(config, listener)
        .await
        .context("the service cannot start")?;
    let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
    // The first line on stdout is the address: scripts and tests read it.
    println!("Online Desktop service listening on {}", service.url());
    service
        .serve(shutdown)
        .await
        .context("the service stopped with an error")
}

/// Ctrl-C or SIGTERM. The handlers are installed at once, before the
/// address is printed: a script that reads the address and then sends
/// SIGTERM must get a graceful stop, not the default (abrupt) one.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
