//! `online-desktop`: the Online Desktop online service.
//!
//! This first version serves the health endpoint the plugin's reachability
//! check asks; accounts, company registration and sync follow (issues 3, 4).

use anyhow::Context;
use axum::routing::get;
use axum::{Json, Router};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
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
    /// Serve the online service over HTTP.
    Serve {
        /// Address to listen on. Port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8480", env = "OD_ONLINE_ADDR")]
        addr: SocketAddr,
    },
}

fn app() -> Router {
    Router::new().route("/api/v1/health", get(health))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { addr } => serve(addr).await,
    }
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another service using that port?)")
    })?;
    let local = listener.local_addr()?;
    // The first line on stdout is the address: scripts and tests read it.
    println!("Online Desktop service listening on http://{local}");
    tracing::info!("listening on http://{local}");
    axum::serve(listener, app())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the service stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
