//! Builds the response to one HTTP request from the world's state, without any I/O.
//!
//! The server hands over the method, path, query and the two headers that matter, and
//! gets back a status, headers, a body and an optional delay. The order of checks is: route,
//! `Authorization`, `akua-context`, injected faults, query validation, then the data. Every
//! request is written to the request log here.

use std::time::Duration;

use serde_json::{Value, json};

use crate::akua::DraftStatus;
use crate::sim::cursor::Cursor;
use crate::sim::fault::{Endpoint, FaultBody, FaultTarget};
use crate::sim::log::{AuthCheck, RequestRecord};
use crate::sim::table::{Row, Table};
use crate::sim::world::{ErrorShape, Pagination, World};

/// The error code Akua uses for a missing or invalid token.
const CODE_UNAUTHORIZED: u32 = 10000;
/// The error code of Akua's "Resource not found" example.
const CODE_NOT_FOUND: u32 = 7002;
// N.B. Akua documents no codes for the errors below, so these are the simulator's choice.
const CODE_INVALID_REQUEST: u32 = 7001;
const CODE_FORBIDDEN: u32 = 10003;
const CODE_METHOD_NOT_ALLOWED: u32 = 7005;
const CODE_SIMULATED_FAULT: u32 = 1000;

/// The longest `offer` query value, from the offer id's schema.
const MAX_OFFER_ID_LENGTH: usize = 56;
const MAX_PRODUCT_ID_LENGTH: usize = 55;
/// The longest `akua-context` header value.
const MAX_CONTEXT_LENGTH: usize = 53;
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

/// The parts of a request the simulated API reads.
pub(super) struct Incoming<'a> {
    pub(super) method: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) authorization: Option<&'a [u8]>,
    pub(super) context: Option<&'a [u8]>,
}

/// The response to send, after waiting `delay` if set.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) status: u16,
    pub(super) content_type: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
    pub(super) delay: Option<Duration>,
}

impl Outgoing {
    fn json(status: u16, body: &Value) -> Outgoing {
        Outgoing {
            status,
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            body: body.to_string(),
            delay: None,
        }
    }
}

/// A path the simulated API serves, with the id from the path where there is one.
enum Route<'a> {
    Served(Endpoint, Option<&'a str>),
    WrongMethod(Endpoint),
    Unknown,
}

fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Route::Unknown;
    };
    let rest = rest.trim_end_matches('/');

    let (endpoint, id) = match rest.split_once('/') {
        None if rest == "offers" => (Endpoint::ListOffers, None),
        None if rest == "order_drafts" => (Endpoint::ListDrafts, None),
        Some(("order_drafts", id)) if !id.is_empty() && !id.contains('/') => (Endpoint::GetDraft, Some(id)),
        Some(("operations", id)) if !id.is_empty() && !id.contains('/') => (Endpoint::GetOperation, Some(id)),
        _ => return Route::Unknown,
    };
    if method != "GET" {
        return Route::WrongMethod(endpoint);
    }
    Route::Served(endpoint, id)
}

/// An error response before it is put in the world's error shape.
struct Rejection {
    status: u16,
    code: u32,
    message: String,
    /// The request part at fault, such as `["query", "limit"]`.
    path: Option<[&'static str; 2]>,
}

impl Rejection {
    fn invalid(parameter: &'static str, message: String) -> Rejection {
        Rejection { status: 400, code: CODE_INVALID_REQUEST, message, path: Some(["query", parameter]) }
    }
}

/// The query string as ordered pairs, percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        Query(pairs)
    }

    /// Returns the first value of `name`. An empty value counts as given.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Returns the cursor, treating an empty one as absent.
    fn cursor(&self) -> Option<&str> {
        self.get("cursor").filter(|cursor| !cursor.is_empty())
    }
}

/// One page of a listing, ready to serialize.
struct Page {
    data: Vec<Value>,
    next_cursor: Option<String>,
}

impl Page {
    fn to_json(&self) -> Value {
        json!({"data": self.data, "has_more": self.next_cursor.is_some(), "next_cursor": self.next_cursor})
    }
}

fn check_auth(header: Option<&[u8]>, token: &str) -> AuthCheck {
    let Some(header) = header.and_then(|header| std::str::from_utf8(header).ok()) else {
        return AuthCheck::Missing;
    };
    let Some((scheme, credentials)) = header.trim().split_once(' ') else {
        return AuthCheck::Missing;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return AuthCheck::Missing;
    }
    if credentials.trim() == token { AuthCheck::Passed } else { AuthCheck::Rejected }
}

impl World {
    /// Builds the response to one request and records the request in the log.
    pub(super) fn handle(&mut self, request: &Incoming<'_>) -> Outgoing {
        let route = route(request.method, request.path);
        let auth = check_auth(request.authorization, &self.token);
        let context = request.context.and_then(|value| std::str::from_utf8(value).ok()).map(str::to_owned);

        let (endpoint, outgoing, fault) = match route {
            Route::Unknown => {
                let message = format!("no route for {} {}", request.method, request.path);
                let rejection = Rejection { status: 404, code: CODE_NOT_FOUND, message, path: None };
                (None, self.reject(&rejection), false)
            }
            Route::WrongMethod(endpoint) => {
                let message = format!("method {} is not allowed on {}; use GET", request.method, request.path);
                let rejection = Rejection { status: 405, code: CODE_METHOD_NOT_ALLOWED, message, path: None };
                (Some(endpoint), self.reject(&rejection), false)
            }
            Route::Served(endpoint, id) => {
                let (outgoing, fault) = self.serve(endpoint, id, request, auth);
                (Some(endpoint), outgoing, fault)
            }
        };

        self.log.record(RequestRecord {
            method: request.method.to_owned(),
            path: request.path.to_owned(),
            query: request.query.map(str::to_owned),
            context,
            auth,
            endpoint,
            status: outgoing.status,
            fault,
        });
        outgoing
    }

    /// Builds the response for a served endpoint. The returned flag is true when a fault matched.
    fn serve(
        &mut self,
        endpoint: Endpoint,
        id: Option<&str>,
        request: &Incoming<'_>,
        auth: AuthCheck,
    ) -> (Outgoing, bool) {
        match auth {
            AuthCheck::Passed => {}
            AuthCheck::Missing => {
                let message = "missing bearer token; send an Authorization: Bearer <token> header".to_owned();
                return (self.reject(&Rejection { status: 401, code: CODE_UNAUTHORIZED, message, path: None }), false);
            }
            AuthCheck::Rejected => {
                let message = "invalid or expired API token".to_owned();
                return (self.reject(&Rejection { status: 401, code: CODE_UNAUTHORIZED, message, path: None }), false);
            }
        }

        if let Err(rejection) = self.check_context(request.context) {
            return (self.reject(&rejection), false);
        }

        let query = Query::parse(request.query);
        let draft_offer = match (endpoint, id) {
            (Endpoint::GetDraft, Some(id)) => {
                self.draft(id).and_then(|draft| draft["offer_id"].as_str()).map(str::to_owned)
            }
            _ => None,
        };
        let offer = match endpoint {
            Endpoint::ListDrafts => query.get("offer"),
            Endpoint::GetDraft => draft_offer.as_deref(),
            Endpoint::ListOffers | Endpoint::GetOperation => None,
        };
        let page = match query.cursor() {
            None => Some(0),
            Some(cursor) => Cursor::decode(cursor).map(|cursor| cursor.page),
        };
        let target = FaultTarget { endpoint, offer, page, id };

        if let Some(fault) = self.faults.take(&target) {
            let Some(status) = fault.status else {
                let mut outgoing = self.respond(endpoint, id, &query);
                outgoing.headers = fault.headers;
                outgoing.delay = fault.delay;
                return (outgoing, true);
            };
            let mut outgoing = match fault.body {
                FaultBody::Error(message) => {
                    self.reject(&Rejection { status, code: CODE_SIMULATED_FAULT, message, path: None })
                }
                FaultBody::Json(body) => Outgoing::json(status, &body),
                FaultBody::Raw { content_type, body } => {
                    Outgoing { status, content_type, headers: Vec::new(), body, delay: None }
                }
            };
            outgoing.headers = fault.headers;
            outgoing.delay = fault.delay;
            return (outgoing, true);
        }

        (self.respond(endpoint, id, &query), false)
    }

    fn check_context(&self, header: Option<&[u8]>) -> Result<(), Rejection> {
        let Some(header) = header else {
            return Ok(());
        };
        let invalid = || Rejection {
            status: 400,
            code: CODE_INVALID_REQUEST,
            message: format!("akua-context must be a workspace id of 1 to {MAX_CONTEXT_LENGTH} characters"),
            path: Some(["header", "akua-context"]),
        };
        let context = std::str::from_utf8(header).map_err(|_| invalid())?;
        if context.is_empty() || context.chars().count() > MAX_CONTEXT_LENGTH {
            return Err(invalid());
        }

        match &self.required_context {
            Some(required) if required != context => Err(Rejection {
                status: 403,
                code: CODE_FORBIDDEN,
                message: format!("akua-context `{context}` names a workspace this token cannot access"),
                path: Some(["header", "akua-context"]),
            }),
            _ => Ok(()),
        }
    }

    /// Builds the response to a request that passed authentication and matched no fault.
    fn respond(&mut self, endpoint: Endpoint, id: Option<&str>, query: &Query) -> Outgoing {
        let result = match endpoint {
            Endpoint::ListOffers => self.list_offers(query).map(|page| page.to_json()),
            Endpoint::ListDrafts => self.list_drafts(query).map(|page| page.to_json()),
            Endpoint::GetDraft => self.get_draft(id.unwrap_or_default()),
            Endpoint::GetOperation => self.get_operation(id.unwrap_or_default()),
        };
        match result {
            Ok(body) => Outgoing::json(200, &body),
            Err(rejection) => self.reject(&rejection),
        }
    }

    fn list_offers(&self, query: &Query) -> Result<Page, Rejection> {
        let product_id = query.get("product_id");
        if let Some(product_id) = product_id {
            check_length("product_id", product_id, MAX_PRODUCT_ID_LENGTH)?;
        }
        let limit = parse_limit(query.get("limit"))?;
        let listing = format!("offers?product_id={}", product_id.unwrap_or_default());
        let cursor = self.read_cursor(query.cursor(), &listing)?;

        let belongs = |row: &Row| product_id.is_none_or(|product_id| row.json["product_id"] == product_id);
        Ok(self.page(&self.offers, belongs, limit, cursor, &listing, |json| json.clone()))
    }

    fn list_drafts(&self, query: &Query) -> Result<Page, Rejection> {
        let Some(offer) = query.get("offer") else {
            let message = "missing query parameter `offer`; drafts are listed one offer at a time".to_owned();
            return Err(Rejection::invalid("offer", message));
        };
        check_length("offer", offer, MAX_OFFER_ID_LENGTH)?;

        let status = query.get("status");
        if let Some(unknown) = status.filter(|status| !DraftStatus::KNOWN.contains(status)) {
            let known = DraftStatus::KNOWN.join(", ");
            return Err(Rejection::invalid(
                "status",
                format!("status `{unknown}` is not a draft status; use one of {known}"),
            ));
        }

        let limit = parse_limit(query.get("limit"))?;
        let listing = format!("order_drafts?offer={offer}&status={}", status.unwrap_or_default());
        let cursor = self.read_cursor(query.cursor(), &listing)?;

        // N.B. an offer the world does not know lists as empty; the real API's response is not documented.
        let belongs =
            |row: &Row| row.json["offer_id"] == offer && status.is_none_or(|status| row.json["status"] == status);
        Ok(self.page(&self.drafts, belongs, limit, cursor, &listing, |json| self.render_draft(json)))
    }

    fn get_draft(&self, id: &str) -> Result<Value, Rejection> {
        let Some(row) = self.drafts.get(id) else {
            let message = format!("order draft `{id}` not found");
            return Err(Rejection { status: 404, code: CODE_NOT_FOUND, message, path: None });
        };
        if row.hidden {
            let message = format!("order draft `{id}` is not visible to this token");
            return Err(Rejection { status: 403, code: CODE_FORBIDDEN, message, path: None });
        }
        Ok(self.render_draft(&row.json))
    }

    fn get_operation(&self, id: &str) -> Result<Value, Rejection> {
        match self.operations.get(id) {
            Some(operation) => Ok(operation.clone()),
            None => {
                let message = format!("operation `{id}` not found");
                Err(Rejection { status: 404, code: CODE_NOT_FOUND, message, path: None })
            }
        }
    }

    /// Decodes a cursor and checks that it belongs to this world and this listing.
    fn read_cursor(&self, text: Option<&str>, listing: &str) -> Result<Option<Cursor>, Rejection> {
        let Some(text) = text else {
            return Ok(None);
        };
        let Some(cursor) = Cursor::decode(text) else {
            let message = "cursor is not valid; pass next_cursor from the previous page unchanged".to_owned();
            return Err(Rejection::invalid("cursor", message));
        };
        if cursor.salt != self.cursor_salt {
            let message = "cursor has expired; restart the listing without a cursor".to_owned();
            return Err(Rejection::invalid("cursor", message));
        }
        if cursor.listing != listing {
            let message = "cursor belongs to a listing with other filters; keep offer, status and product_id unchanged between pages".to_owned();
            return Err(Rejection::invalid("cursor", message));
        }
        Ok(Some(cursor))
    }

    /// Selects one page of `table`, newest first, skipping hidden rows.
    fn page(
        &self,
        table: &Table,
        belongs: impl Fn(&Row) -> bool,
        limit: usize,
        cursor: Option<Cursor>,
        listing: &str,
        render: impl Fn(&Value) -> Value,
    ) -> Page {
        let visible = |row: &&Row| !row.hidden && belongs(row);
        let page_index = cursor.as_ref().map_or(0, |cursor| cursor.page);

        let (rows, has_more, position) = match self.pagination {
            Pagination::Keyset => {
                let mut matching: Box<dyn Iterator<Item = &Row>> = match &cursor {
                    Some(cursor) => Box::new(table.newest_first_before(cursor.position).filter(visible)),
                    None => Box::new(table.newest_first().filter(visible)),
                };
                let rows: Vec<&Row> = matching.by_ref().take(limit).collect();
                let has_more = matching.next().is_some();
                let position = rows.last().map_or(0, |row| row.seq);
                (rows, has_more, position)
            }
            Pagination::Offset => {
                let skip = cursor.as_ref().map_or(0, |cursor| cursor.position);
                let mut matching =
                    table.newest_first().filter(visible).skip(usize::try_from(skip).unwrap_or(usize::MAX));
                let rows: Vec<&Row> = matching.by_ref().take(limit).collect();
                let has_more = matching.next().is_some();
                let position = skip + rows.len() as u64;
                (rows, has_more, position)
            }
        };

        let next_cursor = has_more.then(|| {
            let next =
                Cursor { salt: self.cursor_salt.clone(), listing: listing.to_owned(), page: page_index + 1, position };
            next.encode()
        });
        Page { data: rows.into_iter().map(|row| render(&row.json)).collect(), next_cursor }
    }

    /// Returns a draft as served, with timestamps in milliseconds when the world is set to serve them.
    fn render_draft(&self, draft: &Value) -> Value {
        let mut draft = draft.clone();
        if self.millisecond_timestamps {
            for field in ["created_at", "updated_at", "ttl_expires_at"] {
                if let Some(seconds) = draft.get(field).and_then(Value::as_i64) {
                    draft[field] = json!(seconds * 1000);
                }
            }
        }
        draft
    }

    /// Builds an error response in the world's error shape.
    fn reject(&self, rejection: &Rejection) -> Outgoing {
        let body = match self.error_shape {
            ErrorShape::Envelope => {
                let mut entry = json!({"code": rejection.code, "message": rejection.message});
                if let Some(path) = rejection.path {
                    entry["path"] = json!(path);
                }
                json!({"success": false, "errors": [entry], "result": {}})
            }
            ErrorShape::Legacy => json!({"error": {"code": rejection.code, "message": rejection.message}}),
        };
        Outgoing::json(rejection.status, &body)
    }
}

fn parse_limit(raw: Option<&str>) -> Result<usize, Rejection> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => {
            Err(Rejection::invalid("limit", format!("limit `{raw}` is invalid; use an integer from 1 to {MAX_LIMIT}")))
        }
    }
}

fn check_length(parameter: &'static str, value: &str, max: usize) -> Result<(), Rejection> {
    let length = value.chars().count();
    if length == 0 || length > max {
        return Err(Rejection::invalid(parameter, format!("{parameter} must be 1 to {max} characters, got {length}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_reads_paths() {
        assert!(matches!(route("GET", "/v1/offers"), Route::Served(Endpoint::ListOffers, None)));
        assert!(matches!(route("GET", "/v1/order_drafts/"), Route::Served(Endpoint::ListDrafts, None)));
        assert!(matches!(route("GET", "/v1/order_drafts/odft_1"), Route::Served(Endpoint::GetDraft, Some("odft_1"))));
        assert!(matches!(route("GET", "/v1/operations/op_1"), Route::Served(Endpoint::GetOperation, Some("op_1"))));
        assert!(matches!(route("POST", "/v1/order_drafts"), Route::WrongMethod(Endpoint::ListDrafts)));
        assert!(matches!(route("GET", "/v2/offers"), Route::Unknown));
        assert!(matches!(route("GET", "/v1/order_drafts/a/b"), Route::Unknown));
    }

    #[test]
    fn auth_header_forms() {
        assert_eq!(check_auth(Some(b"Bearer tok"), "tok"), AuthCheck::Passed);
        assert_eq!(check_auth(Some(b"bearer  tok"), "tok"), AuthCheck::Passed);
        assert_eq!(check_auth(Some(b"Bearer other"), "tok"), AuthCheck::Rejected);
        assert_eq!(check_auth(Some(b"Basic dG9r"), "tok"), AuthCheck::Missing);
        assert_eq!(check_auth(Some(b"tok"), "tok"), AuthCheck::Missing);
        assert_eq!(check_auth(None, "tok"), AuthCheck::Missing);
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(parse_limit(None).ok(), Some(50));
        assert_eq!(parse_limit(Some("1")).ok(), Some(1));
        assert_eq!(parse_limit(Some("100")).ok(), Some(100));
        for bad in ["0", "101", "-1", "ten", ""] {
            let rejection = parse_limit(Some(bad)).err().unwrap();
            assert_eq!(rejection.status, 400, "{bad}");
            assert_eq!(rejection.path, Some(["query", "limit"]), "{bad}");
        }
    }
}
