//! Sinks against real HTTP receivers started on 127.0.0.1 for each test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use url::Url;

use super::*;
use crate::config::SlackSinkConfig;
use crate::render::fixture;
use crate::sinks::signature::sign;

/// A secret that every receiver path contains and no reason may show.
const TOKEN: &str = "T0KEN9f3a";

/// The attempt time passed to `deliver`, a whole second so HTTP dates are exact.
const NOW_SECS: u64 = 1_800_000_000;

const SIGNING_KEY: &[u8] = b"0123456789abcdef01234567";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct ReceiverState {
    base: String,
    log: Arc<Mutex<Vec<Received>>>,
}

/// An HTTP server on a free loopback port that records every request and responds according to the
/// last path segment: `ok`, `redirect`, `target`, `fail`, `limited`, `limited-date`,
/// `no-service`, `hang` or `echo`.
struct Receiver {
    base: String,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState { base: base.clone(), log: log.clone() };

        let app = Router::new().fallback(answer).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver runs") });
        Receiver { base, log }
    }

    /// Returns a URL on this receiver whose path carries [`TOKEN`] and ends in `behavior`.
    fn url(&self, behavior: &str) -> Url {
        Url::parse(&format!("{}/hooks/{TOKEN}/{behavior}", self.base)).unwrap()
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    fn received_at(&self, path_suffix: &str) -> Vec<Received> {
        self.received().into_iter().filter(|request| request.path.ends_with(path_suffix)).collect()
    }
}

async fn answer(State(state): State<ReceiverState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    state.log.lock().unwrap().push(Received { path: path.clone(), headers, body });

    let behavior = path.rsplit('/').next().unwrap_or_default();
    match behavior {
        "ok" | "target" => (StatusCode::OK, "ok").into_response(),
        "redirect" => {
            let location = format!("{}/target", state.base);
            (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, location)]).into_response()
        }
        "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom: database unavailable").into_response(),
        "limited" => (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "7")], "slow down").into_response(),
        "limited-date" => {
            let date = httpdate::fmt_http_date(now() + Duration::from_secs(120));
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, date)]).into_response()
        }
        "no-service" => (StatusCode::NOT_FOUND, "no_service").into_response(),
        "hang" => std::future::pending().await,
        "echo" => (StatusCode::BAD_REQUEST, format!("unknown hook {path}")).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn webhook_sink(url: Url, timeout: Duration) -> Sink {
    let config = WebhookSinkConfig {
        url: Secret::new(url),
        signing_key: Some(Secret::new(SIGNING_KEY.to_vec())),
        headers: vec![("x-team".to_owned(), Secret::new("ops".to_owned()))],
        timeout,
    };
    Sink::from_config("ops", &SinkConfig::Webhook(config), http_client())
}

fn slack_sink(url: Url) -> Sink {
    let config = SlackSinkConfig { webhook_url: Secret::new(url) };
    Sink::from_config("sales", &SinkConfig::Slack(config), http_client())
}

fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request.headers.get(name).unwrap_or_else(|| panic!("missing header {name}")).to_str().unwrap()
}

/// Asserts that nothing identifying the secret URL leaks through the error.
fn assert_no_url(err: &DeliveryError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains("/hooks/"), "path leaked: {text}");
        assert!(!text.contains("127.0.0.1"), "address leaked: {text}");
    }
}

#[tokio::test]
async fn webhook_delivers_signed_request() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("ok"), Duration::from_secs(5));
    let n = fixture::status_changed();

    sink.deliver(&n, now()).await.expect("200 is delivered");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.body.as_ref(), render::webhook::body(&n).as_slice());
    assert_eq!(header(request, "content-type"), "application/json");
    assert_eq!(header(request, "user-agent"), format!("draftwatch/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(header(request, "webhook-id"), n.event.id);
    assert_eq!(header(request, "webhook-timestamp"), NOW_SECS.to_string());
    assert_eq!(header(request, "x-team"), "ops");

    let timestamp: i64 = header(request, "webhook-timestamp").parse().unwrap();
    let expected = sign(SIGNING_KEY, header(request, "webhook-id"), timestamp, &request.body);
    assert_eq!(header(request, "webhook-signature"), expected);
}

#[tokio::test]
async fn webhook_signs_each_attempt() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("ok"), Duration::from_secs(5));
    let n = fixture::status_changed();

    sink.deliver(&n, now()).await.unwrap();
    sink.deliver(&n, now() + Duration::from_secs(30)).await.unwrap();

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(header(&received[1], "webhook-timestamp"), (NOW_SECS + 30).to_string());
    assert_ne!(header(&received[0], "webhook-signature"), header(&received[1], "webhook-signature"));
    let expected = sign(SIGNING_KEY, &n.event.id, (NOW_SECS + 30) as i64, &received[1].body);
    assert_eq!(header(&received[1], "webhook-signature"), expected);
}

#[tokio::test]
async fn webhook_unsigned_without_key() {
    let receiver = Receiver::start().await;
    let config = WebhookSinkConfig {
        url: Secret::new(receiver.url("ok")),
        signing_key: None,
        headers: Vec::new(),
        timeout: Duration::from_secs(5),
    };
    let sink = Sink::from_config("plain", &SinkConfig::Webhook(config), http_client());

    sink.deliver(&fixture::created(), now()).await.unwrap();

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].headers.get("webhook-signature").is_none());
    assert!(received[0].headers.get("webhook-id").is_some());
}

#[tokio::test]
async fn webhook_redirect_not_followed() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("redirect"), Duration::from_secs(5));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("HTTP 301 Moved Permanently"), "{err}");
    assert!(err.to_string().contains("redirects are not followed"), "{err}");
    assert_eq!(receiver.received_at("/redirect").len(), 1);
    assert!(receiver.received_at("/target").is_empty(), "the redirect target was requested");
    assert_no_url(&err);
}

#[tokio::test]
async fn webhook_server_error_retryable() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("fail"), Duration::from_secs(5));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    let DeliveryError::Retryable { reason, retry_after } = &err else { panic!("500 is retryable: {err:?}") };
    assert_eq!(reason, "webhook receiver returned HTTP 500 Internal Server Error: boom: database unavailable");
    assert_eq!(*retry_after, None);
    assert_no_url(&err);
}

#[tokio::test]
async fn webhook_retry_after_seconds() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("limited"), Duration::from_secs(5));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    let DeliveryError::Retryable { reason, retry_after } = &err else { panic!("429 is retryable: {err:?}") };
    assert_eq!(*retry_after, Some(Duration::from_secs(7)));
    assert!(reason.contains("HTTP 429 Too Many Requests"), "{reason}");
    assert_no_url(&err);
}

#[tokio::test]
async fn webhook_retry_after_date() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("limited-date"), Duration::from_secs(5));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    let DeliveryError::Retryable { retry_after, .. } = &err else { panic!("429 is retryable: {err:?}") };
    assert_eq!(*retry_after, Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn webhook_not_found_permanent() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("missing"), Duration::from_secs(5));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.to_string(), "webhook receiver returned HTTP 404 Not Found");
}

#[tokio::test]
async fn webhook_echoed_path_redacted() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("echo"), Duration::from_secs(5));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.to_string(), "webhook receiver returned HTTP 400 Bad Request: unknown hook [redacted]");
    assert_no_url(&err);
}

#[tokio::test]
async fn webhook_timeout_retryable() {
    let receiver = Receiver::start().await;
    let sink = webhook_sink(receiver.url("hang"), Duration::from_millis(300));

    let started = Instant::now();
    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.to_string(), "webhook request timed out after 300ms");
    assert_eq!(receiver.received_at("/hang").len(), 1);
    assert_no_url(&err);
}

#[tokio::test]
async fn webhook_refused_connection_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{address}/hooks/{TOKEN}/ok")).unwrap();
    let sink = webhook_sink(url, Duration::from_secs(5));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().starts_with("webhook connection failed: "), "{err}");
    assert_no_url(&err);
}

#[tokio::test]
async fn slack_delivers_payload() {
    let receiver = Receiver::start().await;
    let sink = slack_sink(receiver.url("ok"));
    let n = fixture::terminated("install_failed");

    sink.deliver(&n, now()).await.expect("200 is delivered");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(header(&received[0], "content-type"), "application/json");
    let payload: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(payload, render::slack::payload(&n));
    assert!(received[0].headers.get("webhook-id").is_none());
}

#[tokio::test]
async fn slack_no_service_permanent() {
    let receiver = Receiver::start().await;
    let sink = slack_sink(receiver.url("no-service"));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().starts_with("slack rejected the message with no_service (HTTP 404 Not Found)"), "{err}");
    assert_no_url(&err);
}

#[tokio::test]
async fn slack_rate_limit_hint() {
    let receiver = Receiver::start().await;
    let sink = slack_sink(receiver.url("limited"));

    let err = sink.deliver(&fixture::status_changed(), now()).await.unwrap_err();

    let DeliveryError::Retryable { retry_after, .. } = &err else { panic!("429 is retryable: {err:?}") };
    assert_eq!(*retry_after, Some(Duration::from_secs(7)));
    assert_no_url(&err);
}

#[tokio::test]
async fn console_always_delivers() {
    let sink = Sink::from_config("stdout", &SinkConfig::Console, http_client());
    assert_eq!(sink.deliver(&fixture::status_changed(), now()).await, Ok(()));
    assert_eq!(sink.kind(), "console");
    assert_eq!(sink.name(), "stdout");
}

#[test]
fn sink_debug_hides_url() {
    let url = Url::parse(&format!("https://hooks.example.com/services/{TOKEN}")).unwrap();
    let slack = slack_sink(url.clone());
    let webhook = webhook_sink(url, Duration::from_secs(1));

    for sink in [&slack, &webhook] {
        let debug = format!("{sink:?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(debug.contains(sink.name()), "{debug}");
    }
    assert_eq!(slack.kind(), "slack");
    assert_eq!(webhook.kind(), "webhook");
}
