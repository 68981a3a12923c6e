//! The optional HTTP endpoint of `run`: probes, status and metrics.
//!
//! `GET /healthz` returns 200 while the process runs. `GET /readyz` returns 200 once the
//! configuration is loaded and the state store is open, and never looks at the Akua API or
//! the sinks, so an outage upstream does not take the pod out of service. `GET /status`
//! serves [`crate::status::StatusReport`] as JSON, and `GET /metrics` the Prometheus text
//! of [`crate::metrics`]. The server only reads; it changes nothing, and it stops when
//! the process's [`Shutdown`] triggers.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::JoinHandle;

use crate::metrics::Gauges;
use crate::shutdown::Shutdown;
use crate::status::Status;

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The state every handler reads.
#[derive(Clone)]
struct Shared {
    status: &'static Status,
    /// `None` when no recorder is installed, and `/metrics` then returns 404.
    metrics: Option<PrometheusHandle>,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `listen` and serves until `shutdown` triggers. Port 0 picks a free port; the
    /// bound address is logged and returned by [`Server::addr`].
    pub async fn start(
        listen: SocketAddr,
        status: &'static Status,
        metrics: Option<PrometheusHandle>,
        shutdown: Shutdown,
    ) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen} (server.listen); pick a free port or stop what uses it")
        })?;
        let addr = listener.local_addr().context("cannot read the address the server is bound to")?;

        let app = router(Shared { status, metrics });
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await;
            if let Err(error) = served {
                tracing::error!(error = %error, "http server failed; probes will fail until draftwatch restarts");
            }
        });
        tracing::info!(address = %addr, "http server listening");
        Ok(Server { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the server to finish after shutdown was triggered.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> Response {
    if shared.status.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the state store is not open yet\n").into_response()
    }
}

async fn status(State(shared): State<Shared>) -> Response {
    let status = shared.status;
    // N.B. reading the outbox is a sled scan; keep it off the async workers.
    match tokio::task::spawn_blocking(move || status.report()).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("status report failed: {error}\n")).into_response(),
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let Some(handle) = shared.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are not recorded in this process\n").into_response();
    };
    let status = shared.status;
    let rendered = tokio::task::spawn_blocking(move || {
        crate::metrics::refresh_gauges(read_gauges(status));
        handle.run_upkeep();
        handle.render()
    })
    .await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics rendering failed: {error}\n")).into_response()
        }
    }
}

fn read_gauges(status: &Status) -> Gauges {
    let mut gauges = Gauges { offers_failing: status.offers_failing(), ..Gauges::default() };
    if let Some(store) = status.store() {
        match store.outbox_counts() {
            Ok((pending, dead)) => (gauges.pending, gauges.dead) = (pending, dead),
            Err(error) => tracing::warn!(error = %error, "cannot count the outbox for /metrics"),
        }
        gauges.snapshot_drafts = store.snapshot_len();
    }
    gauges
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::Store;

    async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> (u16, String) {
        let response = client.get(format!("http://{addr}{path}")).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn readyz_waits_for_store() {
        let status: &'static Status = Box::leak(Box::new(Status::new()));
        let shutdown = Shutdown::new();
        let server =
            Server::start(SocketAddr::from(([127, 0, 0, 1], 0)), status, None, shutdown.clone()).await.unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let addr = server.addr();

        assert_eq!(get(&client, addr, "/healthz").await.0, 200);
        assert_eq!(get(&client, addr, "/readyz").await.0, 503);
        assert_eq!(get(&client, addr, "/metrics").await.0, 404, "no recorder in this process");
        let (code, body) = get(&client, addr, "/status").await;
        assert_eq!(code, 200);
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(report["ready"], false);

        let dir = tempfile::tempdir().unwrap();
        status.set_ready(Arc::new(Store::open(&dir.path().join("state")).unwrap()));
        assert_eq!(get(&client, addr, "/readyz").await.0, 200);

        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(5), server.stopped()).await.unwrap();
        assert!(client.get(format!("http://{addr}/healthz")).send().await.is_err(), "the server stopped");
    }
}
