//! The HTTP client for the Akua API.
//!
//! It lists offers and order drafts page by page and turns every failure into an
//! [`ApiError`]. It neither retries nor sleeps: the caller decides what a failure means for
//! the sweep. One client is built per process and reused, so connections are pooled.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, USER_AGENT};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::{ApiError, RequestContext, error_message};
use super::model::{Draft, DraftParseError, DraftStatus, ListedHead, Offer, Page};
use super::scan::{ScannedItem, scan_page};
use crate::config::AkuaConfig;
use crate::secret::Secret;

/// The maximum number of pages one listing may take before it is cut off as a runaway.
///
/// At 100 drafts a page this is a million drafts for one offer, far beyond any real offer,
/// so reaching it means the API is looping.
pub const MAX_PAGES_PER_LISTING: usize = 10_000;

/// Time allowed to establish a TCP and TLS connection, within the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one Akua workspace.
#[derive(Clone)]
pub struct AkuaClient {
    http: reqwest::Client,
    /// Without a trailing slash.
    base_url: String,
    /// `host:port` of `base_url`, named in transport errors; never contains credentials.
    host: String,
    /// The full `Bearer …` header value, marked sensitive so reqwest never logs it.
    authorization: Secret<HeaderValue>,
    context: Option<HeaderValue>,
    /// 1..=100, sent as `limit`.
    page_size: u8,
    /// At least 1; see [`MAX_PAGES_PER_LISTING`].
    max_pages: usize,
}

impl std::fmt::Debug for AkuaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AkuaClient").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// All drafts of one offer, read page by page until `has_more` was false.
#[derive(Debug, Default)]
pub struct DraftListing {
    pub drafts: Vec<Draft>,
    pub pages: usize,
    /// Listed items that could not be read as drafts, with their position in the listing.
    pub skipped: Vec<(usize, DraftParseError)>,
}

/// One step of a listing, as [`AkuaClient::walk_drafts`] passes it to its callback.
#[derive(Debug)]
pub enum ListingStep<'a> {
    /// One page, in listing order. `skipped` contains the items that are not readable drafts,
    /// with their position in the listing.
    Page { drafts: Vec<ListedHead<'a>>, skipped: Vec<(usize, DraftParseError)> },
    /// A cursor was rejected and the listing starts again from the first page: forget
    /// every page handed over so far.
    Restarted,
}

/// Counts from a completed listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Pages read, including those of an abandoned first attempt.
    pub pages: usize,
    /// 0, or 1 when a rejected cursor restarted the listing.
    pub restarts: usize,
}

impl AkuaClient {
    /// Builds the client. Fails only when the token or context cannot be sent as a header.
    pub fn new(config: &AkuaConfig) -> anyhow::Result<AkuaClient> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", config.token.expose()))
            .map_err(|_| anyhow::anyhow!("akua.token contains characters that cannot be sent in a header"))?;
        authorization.set_sensitive(true);

        let context = match &config.context {
            Some(context) => Some(
                HeaderValue::from_str(context)
                    .map_err(|_| anyhow::anyhow!("akua.context `{context}` cannot be sent in a header"))?,
            ),
            None => None,
        };

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("draftwatch/", env!("CARGO_PKG_VERSION"))));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.request_timeout))
            .build()?;

        Ok(AkuaClient {
            http,
            base_url: config.base_url.as_str().trim_end_matches('/').to_owned(),
            host: match (config.base_url.host_str(), config.base_url.port_or_known_default()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                _ => "no host".to_owned(),
            },
            authorization: Secret::new(authorization),
            context,
            page_size: config.page_size,
            max_pages: MAX_PAGES_PER_LISTING,
        })
    }

    /// Cuts listings off after `max_pages` pages (at least 1) instead of
    /// [`MAX_PAGES_PER_LISTING`].
    pub fn with_max_pages(mut self, max_pages: usize) -> AkuaClient {
        self.max_pages = max_pages.max(1);
        self
    }

    /// Lists every offer visible to the token, following cursors to the end.
    pub async fn list_offers(&self) -> Result<Vec<Offer>, ApiError> {
        let context = RequestContext { endpoint: "GET /offers", offer: None };
        let mut offers = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen_cursors = HashSet::new();

        for _ in 0..self.max_pages {
            let mut query = vec![("limit", self.page_size.to_string())];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.clone()));
            }
            let page: Page<Offer> = self.get_json(&context, "/offers", &query).await?;
            offers.extend(page.data);

            match next_cursor(&context, page.has_more, page.next_cursor, &mut seen_cursors)? {
                Some(next) => cursor = Some(next),
                None => return Ok(offers),
            }
        }
        Err(runaway(&context, self.max_pages))
    }

    /// Reads one page of an offer's drafts, optionally filtered by status.
    pub async fn list_drafts_page(
        &self,
        offer: &str,
        status: Option<&DraftStatus>,
        cursor: Option<&str>,
    ) -> Result<Page<Value>, ApiError> {
        let context = RequestContext { endpoint: "GET /order_drafts", offer: Some(offer.to_owned()) };
        self.get_json(&context, "/order_drafts", &self.drafts_query(offer, status, cursor)).await
    }

    /// Reads one page of an offer's drafts as the response body, for a caller that
    /// parses it without copying each item.
    async fn list_drafts_page_body(
        &self,
        offer: &str,
        status: Option<&DraftStatus>,
        cursor: Option<&str>,
    ) -> Result<impl AsRef<[u8]> + use<>, ApiError> {
        let context = RequestContext { endpoint: "GET /order_drafts", offer: Some(offer.to_owned()) };
        let result = self.send_get_body(&context, "/order_drafts", &self.drafts_query(offer, status, cursor)).await;
        if let Err(error) = &result {
            crate::metrics::api_error(error);
        }
        result
    }

    fn drafts_query(
        &self,
        offer: &str,
        status: Option<&DraftStatus>,
        cursor: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        let mut query = vec![("offer", offer.to_owned()), ("limit", self.page_size.to_string())];
        if let Some(status) = status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        query
    }

    /// Lists every draft of one offer, following cursors until `has_more` is false.
    ///
    /// Items that are not readable drafts are skipped and reported in
    /// [`DraftListing::skipped`]; any failed page fails the whole listing, so the caller
    /// never mistakes a partial listing for a complete one.
    pub async fn list_drafts(&self, offer: &str) -> Result<DraftListing, ApiError> {
        let mut listing = DraftListing::default();
        let stats = self
            .walk_drafts(offer, None, |step| match step {
                ListingStep::Page { drafts, skipped } => {
                    for draft in drafts {
                        // N.B. `into_draft` fails for no item `walk_drafts` passes on, so the
                        // position recorded here is never used in practice.
                        match draft.into_owned().into_draft() {
                            Ok(draft) => listing.drafts.push(draft),
                            Err(error) => listing.skipped.push((listing.drafts.len() + listing.skipped.len(), error)),
                        }
                    }
                    listing.skipped.extend(skipped);
                }
                ListingStep::Restarted => {
                    listing.drafts.clear();
                    listing.skipped.clear();
                }
            })
            .await?;
        listing.pages = stats.pages;
        Ok(listing)
    }

    /// Walks one offer's drafts page by page, optionally only those in `status`, handing
    /// each page to `on_step` as it arrives.
    ///
    /// A 400 on a page after the first means the cursor was rejected (it expired, or the
    /// listing changed under it): the listing restarts once from the first page, and
    /// `on_step` hears [`ListingStep::Restarted`] first. A second rejection, any other
    /// failed page, a cursor that comes back, or more than the page bound fails the walk;
    /// the caller must then discard what it was handed.
    pub async fn walk_drafts(
        &self,
        offer: &str,
        status: Option<&DraftStatus>,
        mut on_step: impl FnMut(ListingStep<'_>),
    ) -> Result<WalkStats, ApiError> {
        let context = RequestContext { endpoint: "GET /order_drafts", offer: Some(offer.to_owned()) };
        let mut stats = WalkStats::default();

        'attempts: loop {
            let mut cursor: Option<String> = None;
            let mut seen_cursors = HashSet::new();
            let mut position = 0;

            for _ in 0..self.max_pages {
                let body = match self.list_drafts_page_body(offer, status, cursor.as_deref()).await {
                    Ok(body) => body,
                    Err(ApiError::Status { status: 400, .. }) if cursor.is_some() && stats.restarts == 0 => {
                        tracing::warn!(
                            offer_id = offer,
                            pages = stats.pages,
                            "cursor rejected; listing the offer again from the first page"
                        );
                        stats.restarts += 1;
                        on_step(ListingStep::Restarted);
                        continue 'attempts;
                    }
                    Err(error) => return Err(error),
                };
                stats.pages += 1;
                let page = read_listing_page(&context, body.as_ref()).inspect_err(crate::metrics::api_error)?;

                let mut drafts = Vec::with_capacity(page.items.len());
                let mut skipped = Vec::new();
                for item in page.items {
                    let head = match item {
                        ListedItem::Scanned(item) => ListedHead::from_scanned(item),
                        ListedItem::Parsed(raw) => ListedHead::parse(raw.get()),
                    };
                    match head {
                        Ok(draft) => drafts.push(draft),
                        Err(error) => skipped.push((position, error)),
                    }
                    position += 1;
                }
                on_step(ListingStep::Page { drafts, skipped });

                match next_cursor(&context, page.has_more, page.next_cursor, &mut seen_cursors)? {
                    Some(next) => cursor = Some(next),
                    None => return Ok(stats),
                }
            }
            return Err(runaway(&context, self.max_pages));
        }
    }

    /// Reads one draft by id. A 404 is `Ok(None)`.
    pub async fn get_draft(&self, id: &str) -> Result<Option<Draft>, ApiError> {
        let context = RequestContext { endpoint: "GET /order_drafts/{id}", offer: None };
        let path = format!("/order_drafts/{}", encode_path_segment(id));
        match self.get_json::<Value>(&context, &path, &[]).await {
            Ok(raw) => Draft::from_value(raw)
                .map(Some)
                .map_err(|error| ApiError::InvalidResponse { context, detail: error.to_string() }),
            Err(ApiError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Reads one operation, such as a draft's install operation, as the API returned it.
    pub async fn get_operation(&self, id: &str) -> Result<Value, ApiError> {
        let context = RequestContext { endpoint: "GET /operations/{id}", offer: None };
        let path = format!("/operations/{}", encode_path_segment(id));
        self.get_json(&context, &path, &[]).await
    }

    /// Sends one GET and parses the JSON response; every failure is counted in the metrics.
    async fn get_json<T: DeserializeOwned>(
        &self,
        context: &RequestContext,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let result = self.send_get(context, path, query).await;
        if let Err(error) = &result {
            crate::metrics::api_error(error);
        }
        result
    }

    async fn send_get<T: DeserializeOwned>(
        &self,
        context: &RequestContext,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let body = self.send_get_body(context, path, query).await?;
        parse_body(context, body.as_ref())
    }

    /// Sends one GET and returns the body of a 2xx response.
    async fn send_get_body(
        &self,
        context: &RequestContext,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<impl AsRef<[u8]> + use<>, ApiError> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base_url))
            .query(query)
            .header(AUTHORIZATION, self.authorization.expose().clone());
        if let Some(workspace) = &self.context {
            request = request.header("akua-context", workspace.clone());
        }

        let transport = |error: reqwest::Error| ApiError::Transport {
            context: context.clone(),
            detail: format!("{} ({})", describe_transport(error), self.host),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;

        if status.is_success() {
            return Ok(body);
        }

        let message = error_message(&body);
        let status = status.as_u16();
        if status == 401 || status == 403 {
            return Err(ApiError::Unauthorized { status, context: context.clone(), message });
        }
        Err(ApiError::Status { status, context: context.clone(), message })
    }
}

/// One page of a draft listing, read by [`read_listing_page`].
struct ListingPage<'a> {
    items: Vec<ListedItem<'a>>,
    has_more: bool,
    next_cursor: Option<String>,
}

/// An item of a [`ListingPage`], found by the scanner or by serde_json.
enum ListedItem<'a> {
    Scanned(ScannedItem<'a>),
    Parsed(&'a RawValue),
}

/// Reads one page of a draft listing: with [`scan_page`] where it can, which parses only
/// the head of each draft, and with serde_json otherwise, which then decides what is wrong
/// with the page.
fn read_listing_page<'a>(context: &RequestContext, body: &'a [u8]) -> Result<ListingPage<'a>, ApiError> {
    if let Ok(text) = std::str::from_utf8(body)
        && let Some(page) = scan_page(text)
        && let Ok(has_more) = page.has_more.map_or(Ok(false), serde_json::from_str::<bool>)
        && let Ok(next_cursor) = page.next_cursor.map_or(Ok(None), serde_json::from_str::<Option<String>>)
    {
        let items = page.items.into_iter().map(ListedItem::Scanned).collect();
        return Ok(ListingPage { items, has_more, next_cursor });
    }

    let page: Page<&RawValue> = parse_body(context, body)?;
    let items = page.data.into_iter().map(ListedItem::Parsed).collect();
    Ok(ListingPage { items, has_more: page.has_more, next_cursor: page.next_cursor })
}

/// Parses the body of a 2xx response.
fn parse_body<'a, T: serde::Deserialize<'a>>(context: &RequestContext, body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::InvalidResponse { context: context.clone(), detail: error.to_string() })
}

/// Returns the cursor of the next page, or `None` when the listing is complete.
fn next_cursor(
    context: &RequestContext,
    has_more: bool,
    next: Option<String>,
    seen: &mut HashSet<String>,
) -> Result<Option<String>, ApiError> {
    if !has_more {
        return Ok(None);
    }
    let Some(next) = next.filter(|cursor| !cursor.is_empty()) else {
        return Err(ApiError::InvalidResponse {
            context: context.clone(),
            detail: "has_more is true but next_cursor is missing".to_owned(),
        });
    };
    if !seen.insert(next.clone()) {
        return Err(ApiError::RunawayListing {
            context: context.clone(),
            detail: format!("cursor `{}` came back twice", super::error::truncate_chars(&next, 40)),
        });
    }
    Ok(Some(next))
}

fn runaway(context: &RequestContext, max_pages: usize) -> ApiError {
    ApiError::RunawayListing { context: context.clone(), detail: format!("still has_more after {max_pages} pages") }
}

/// Describes a transport error without its URL, which would repeat the base URL and query.
fn describe_transport(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "response body could not be read"
    } else {
        "request failed"
    };
    let mut detail = kind.to_owned();
    let error = error.without_url();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

/// Percent-encodes a path segment so an id can never add a path or a query.
fn encode_path_segment(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}
