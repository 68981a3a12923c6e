//! The HTTP server that serves a [`World`] on a loopback port.
//!
//! [`SimApi`] owns the server task and shares the world with it behind a std mutex. Each
//! request locks the world only while `World::handle` builds the response; a fault's delay
//! is waited out after the lock is released. The server binds 127.0.0.1 only.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::sim::handler::Incoming;
use crate::sim::log::{Counters, RequestRecord};
use crate::sim::world::World;

/// A world shared between the server and its owner.
pub type SharedWorld = Arc<Mutex<World>>;

/// How long [`SimApi::shutdown`] waits for open connections before it stops the server anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulated Akua API. Dropping it stops the server as well.
pub struct SimApi {
    addr: SocketAddr,
    world: SharedWorld,
    /// Present until shutdown is requested.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimApi {
    /// Serves `world` on 127.0.0.1 at a free port chosen by the system.
    pub async fn start(world: World) -> std::io::Result<SimApi> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let world: SharedWorld = Arc::new(Mutex::new(world));
        let router = Router::new().fallback(serve_request).with_state(world.clone());

        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            // N.B. a dropped sender also ends the wait, which is what stops the server on drop.
            let _ = stopped.await;
        });
        let task = tokio::spawn(async move { server.await });
        tracing::debug!(%addr, "simulated akua api started");

        Ok(SimApi { addr, world, stop: Some(stop), task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the base URL clients use, such as `http://127.0.0.1:41234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Returns the bearer token the world accepts.
    pub fn token(&self) -> String {
        self.with_world(|world| world.token().to_owned())
    }

    /// Returns the shared world, for callers that keep it beyond this handle.
    pub fn world(&self) -> SharedWorld {
        self.world.clone()
    }

    /// Runs `f` with the world locked. Requests wait until `f` returns, so keep it short and
    /// never await inside it.
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut lock(&self.world))
    }

    /// Returns a copy of the kept request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.with_world(|world| world.request_log().records().cloned().collect())
    }

    pub fn counters(&self) -> Counters {
        self.with_world(|world| world.request_log().counters().clone())
    }

    /// Stops accepting connections, lets open requests finish for up to five seconds, then
    /// stops the server.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return;
        };

        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => tracing::debug!(addr = %self.addr, "simulated akua api stopped"),
            Ok(Ok(Err(error))) => tracing::warn!(addr = %self.addr, %error, "simulated akua api failed"),
            Ok(Err(error)) => tracing::warn!(addr = %self.addr, %error, "simulated akua api task failed"),
            Err(_) => {
                tracing::warn!(addr = %self.addr, "simulated akua api did not stop in time; aborting it");
                task.abort();
            }
        }
    }
}

impl Drop for SimApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Locks the world, recovering it if a caller panicked while holding the lock. A panic in a
/// test closure leaves the world usable; every method keeps it consistent between writes.
pub(super) fn lock(world: &SharedWorld) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve_request(State(world): State<SharedWorld>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let outgoing = {
        let request = Incoming {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query(),
            authorization: headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes),
            context: headers.get("akua-context").map(HeaderValue::as_bytes),
        };
        lock(&world).handle(&request)
    };

    if let Some(delay) = outgoing.delay {
        tokio::time::sleep(delay).await;
    }

    let mut response = Response::new(Body::from(outgoing.body));
    *response.status_mut() = StatusCode::from_u16(outgoing.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let response_headers = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&outgoing.content_type) {
        response_headers.insert(header::CONTENT_TYPE, content_type);
    }
    for (name, value) in outgoing.headers {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => {
                response_headers.append(name, value);
            }
            _ => tracing::warn!(header = %name, "injected fault header is not a valid http header; skipped"),
        }
    }
    response
}
