//! The endpoint: `/metrics` (the reader thread's last page, OpenMetrics text) and `/healthz`
//! (200 while the reader thread keeps passing, 503 once it has stalled), on axum over the
//! tokio runtime. Handlers only copy a String under a lock: they never read a process.
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::reader::Shared;

/// What the handlers share.
#[derive(Clone)]
struct App {
    shared: Shared,
    /// A pass older than this means the reader is stuck.
    stale_after: Duration,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: the port is in use; pick another with --listen ADDR:PORT")]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Other {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds `addr` now, so that a port in use is an error before anything else starts.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ListenError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => ListenError::InUse { addr },
            _ => ListenError::Other { addr, source },
        })
}

/// Serves until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
    interval: Duration,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = App {
        shared,
        stale_after: (interval * 5).max(Duration::from_secs(10)),
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(index))
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
}

/// OpenMetrics to whoever asks for it (Prometheus does), the 0.0.4 text format otherwise.
async fn metrics(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    let om = headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.contains("application/openmetrics-text"))
    });
    let p = app.shared.lock().unwrap_or_else(|e| e.into_inner());
    let (ty, body) = if om {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            p.openmetrics.clone(),
        )
    } else {
        ("text/plain; version=0.0.4; charset=utf-8", p.text.clone())
    };
    drop(p);
    ([(header::CONTENT_TYPE, ty)], body)
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let at = app
        .shared
        .lock()
        .map(|p| p.at)
        .unwrap_or_else(|e| e.into_inner().at);
    match at {
        Some(t) if t.elapsed() <= app.stale_after => (StatusCode::OK, "ok\n".to_string()),
        Some(t) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stale: the last pass ended {:.1}s ago\n",
                t.elapsed().as_secs_f64()
            ),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: no pass yet\n".to_string(),
        ),
    }
}

async fn index() -> &'static str {
    "gmp-trace serve: /metrics (OpenMetrics), /healthz\n"
}
