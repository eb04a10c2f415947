//! A stand-in for the Cloudflare API v4, the part the daemon uses: DNS records and token
//! verification.
//!
//! [`CloudflareStandIn`] owns a local HTTP server on `127.0.0.1` with a base path of
//! `/client/v4`, an in-memory set of DNS records, a queue of injected faults and a log of
//! every request. It answers with Cloudflare's JSON envelope
//! (`{"success","errors","messages","result"}`) and the status codes and error codes
//! Cloudflare uses, so the daemon's real `reqwest` client can be pointed at it unchanged.
//!
//! Endpoints (all need `Authorization: Bearer <token>`):
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /user/tokens/verify` | `{"id","status":"active"}` |
//! | `GET /zones/{zone}/dns_records` | the records of the zone, filtered by `name` (or `name.exact`, ASCII case-insensitive), `type` and `content` (exact), paged by `page` and `per_page` |
//! | `GET /zones/{zone}/dns_records/{id}` | one record |
//! | `PATCH /zones/{zone}/dns_records/{id}` | changes the fields present in the JSON body (`content`, `ttl`, `proxied`, `name`, `type`, `comment`, `tags`) |
//! | `PUT /zones/{zone}/dns_records/{id}` | replaces the record (`type`, `name` and `content` required) |
//!
//! Errors, as Cloudflare answers them (HTTP status, then the `errors` array):
//!
//! - no `Authorization` header: 400, `9106 Missing X-Auth-Key, X-Auth-Email or
//!   Authorization headers` (`1001 Missing "Authorization" header` on `tokens/verify`);
//! - an `Authorization` header that is not `Bearer <token>`: 400, `6003 Invalid request
//!   headers` with `error_chain` `6111 Invalid format for Authorization header`;
//! - a well-formed but wrong token: 403, `10000 Authentication error`; on `tokens/verify`
//!   401, `1000 Invalid API Token`;
//! - a zone id the stand-in does not hold: 403 `10000 Authentication error` if it looks
//!   like a Cloudflare id (32 hex digits; a token is never authorised for a zone that is not
//!   there), else 400 `7003 Could not route to <path>, perhaps your object identifier is
//!   invalid?` followed by `7000 No route for that URI` (the same for a malformed record id
//!   and for any path or method the stand-in does not model);
//! - a record id in the right format that is not in the zone: 404, `81044 Record does not
//!   exist.`;
//! - a `PATCH`/`PUT` body that is not `application/json`: 400, `9207 Content-type must be
//!   application/json.`; one that is not a JSON object of the right field types: 400,
//!   `9207 Request body is invalid.`;
//! - a bad TTL, content or proxied flag: 400, `1004 DNS Validation Error` with an
//!   `error_chain` of `9021 Invalid TTL…`, `9005 Content for A record is invalid…`,
//!   `9006 Content for AAAA record is invalid…` or `9041 Invalid proxied mode…`;
//! - more than [`RATE_LIMIT_REQUESTS`] authenticated requests in
//!   [`RATE_LIMIT_WINDOW`]: 429 with `Retry-After` and `971 Please wait and consider
//!   throttling your request speed`.
//!
//! Faults injected with [`CloudflareStandIn::inject`] take the next requests, whatever
//! their endpoint, before authentication, in order; see [`Fault`].

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How many authenticated requests Cloudflare allows per token in [`RATE_LIMIT_WINDOW`].
pub const RATE_LIMIT_REQUESTS: usize = 1200;

/// The window of Cloudflare's global API rate limit: five minutes.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(300);

/// One DNS record as the stand-in holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Cloudflare's record identifier: 32 lowercase hex digits.
    pub id: String,
    /// The zone the record belongs to.
    pub zone_id: String,
    /// The fully qualified record name, e.g. `db.example.com`.
    pub name: String,
    /// The record type, e.g. `A`, `AAAA`, `CNAME`.
    pub r#type: String,
    /// The record content, e.g. an IPv4 address for an `A` record.
    pub content: String,
    /// Time to live in seconds; `1` means "automatic".
    pub ttl: u32,
    /// Whether Cloudflare proxies the record.
    pub proxied: bool,
}

/// A fault to answer one request with, instead of normal service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a Cloudflare error envelope whose message is the
    /// status's reason phrase. Cloudflare documents no error code for its own failures, so
    /// the code is synthetic: `10000 + status` (e.g. `10500` for 500). `Status(429)` answers
    /// the rate-limit body (code 971) without a `Retry-After` header.
    Status(u16),
    /// Answer 429 with `Retry-After: <retry_after_secs>` and Cloudflare's rate-limit body.
    RateLimited {
        /// The value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Never answer: the request stays open until the client gives up or the stand-in is
    /// dropped (which closes the connection without a response).
    Hang,
    /// Answer 400 with an error whose message echoes the request's `Authorization`
    /// header, token and all (`6003 bad header Bearer <token>`), as a careless proxy or
    /// API might: what the client does with an error text it did not write.
    EchoAuthorization,
    /// Answer `200` with a body that never ends ([`crate::hostile::endless_body`]).
    EndlessBody,
    /// Answer `307` to the same path and query at this address
    /// ([`crate::hostile::redirect_to`]), as a hijacked endpoint might to collect the
    /// token.
    RedirectTo(SocketAddr),
}

/// A running Cloudflare API stand-in; dropping it stops the server and closes every
/// connection it still holds.
pub struct CloudflareStandIn {
    addr: SocketAddr,
    state: Shared,
    server: JoinHandle<()>,
}

/// The stand-in's state, shared between the handle and the server.
///
/// A `std::sync::Mutex` is enough: every critical section is a short synchronous block
/// (each request is decided entirely under the lock, then the lock is released before the
/// handler awaits anything, e.g. a [`Fault::Hang`]), so no guard is ever held across an
/// `.await`.
type Shared = Arc<Mutex<Inner>>;

struct Inner {
    token: String,
    token_id: String,
    records: Vec<Stored>,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
    patches: usize,
    window: VecDeque<Instant>,
    ids: IdSource,
}

/// A record plus the fields the API shows but [`Record`] does not carry.
struct Stored {
    record: Record,
    zone_name: String,
    comment: Option<String>,
    tags: Vec<String>,
    created_on: String,
    modified_on: String,
}

/// What to do with one request, decided under the lock.
enum Reply {
    Now(Response),
    Hang,
}

impl CloudflareStandIn {
    /// Starts the stand-in on a free loopback port; requests must carry
    /// `Authorization: Bearer <token>`. Must be called inside a tokio runtime.
    pub async fn start(token: &str) -> anyhow::Result<CloudflareStandIn> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Cloudflare stand-in to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let mut ids = IdSource::new();
        let state: Shared = Arc::new(Mutex::new(Inner {
            token: token.to_owned(),
            token_id: ids.next(),
            records: Vec::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            patches: 0,
            window: VecDeque::new(),
            ids,
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(crate::http::serve(listener, app));
        tracing::debug!(%addr, "Cloudflare stand-in listening");
        Ok(CloudflareStandIn {
            addr,
            state,
            server,
        })
    }

    /// The API base URL to configure the daemon with: `http://127.0.0.1:PORT/client/v4`.
    pub fn api_base(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// Adds a record and returns its new 32-hex id. The zone becomes known to the stand-in;
    /// its `zone_name` in API answers is the last two labels of `name`.
    pub fn add_record(
        &self,
        zone_id: &str,
        name: &str,
        r#type: &str,
        content: &str,
        ttl: u32,
        proxied: bool,
    ) -> String {
        let mut inner = lock(&self.state);
        let id = inner.ids.next();
        let now = now_rfc3339();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        inner.records.push(Stored {
            zone_name: zone_name_of(&name),
            record: Record {
                id: id.clone(),
                zone_id: zone_id.to_owned(),
                name,
                r#type: r#type.to_ascii_uppercase(),
                content: content.to_owned(),
                ttl,
                proxied,
            },
            comment: None,
            tags: Vec::new(),
            created_on: now.clone(),
            modified_on: now,
        });
        id
    }

    /// The record with this id, as it is now.
    pub fn record(&self, id: &str) -> Option<Record> {
        lock(&self.state)
            .records
            .iter()
            .find(|s| s.record.id == id)
            .map(|s| s.record.clone())
    }

    /// Points a record elsewhere, as an operator (or the other host's promotion) would.
    pub fn set_content(&self, id: &str, content: &str) {
        let mut inner = lock(&self.state);
        if let Some(stored) = inner.records.iter_mut().find(|s| s.record.id == id) {
            stored.record.content = content.to_owned();
        }
    }

    /// Every record, in the order they were added.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.state)
            .records
            .iter()
            .map(|s| s.record.clone())
            .collect()
    }

    /// Queues faults: the next requests, whatever their endpoint, get them one each in
    /// order (before authentication is checked); then normal service resumes.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state).faults.extend(faults);
    }

    /// Every request received, in order, as `"METHOD /path?query"` (the path includes
    /// `/client/v4`), faulted and rejected ones included.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// How many `PATCH` requests changed a record (rejected and faulted ones not counted;
    /// see [`requests`](Self::requests) for every attempt).
    pub fn patch_count(&self) -> usize {
        lock(&self.state).patches
    }
}

impl Drop for CloudflareStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(state: &Shared) -> MutexGuard<'_, Inner> {
    // A panic elsewhere cannot leave `Inner` half-updated in a way that matters to a test.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = lock(&state).reply(&method, &uri, &headers, &body);
    match reply {
        Reply::Now(response) => response,
        Reply::Hang => std::future::pending().await,
    }
}

impl Fault {
    /// What the stand-in answers instead of serving the request.
    fn reply(self, uri: &Uri, headers: &HeaderMap) -> Reply {
        match self {
            Fault::Hang => Reply::Hang,
            Fault::RateLimited { retry_after_secs } => {
                Reply::Now(rate_limited(Some(retry_after_secs)))
            }
            Fault::Status(429) => Reply::Now(rate_limited(None)),
            Fault::Status(code) => Reply::Now(server_error(code)),
            Fault::EchoAuthorization => Reply::Now(echo_authorization(headers)),
            Fault::EndlessBody => Reply::Now(crate::hostile::endless_body(None)),
            Fault::RedirectTo(target) => Reply::Now(crate::hostile::redirect_to(target, uri)),
        }
    }
}

impl Inner {
    fn reply(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
        let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        self.requests.push(format!("{method} {target}"));
        tracing::debug!(%method, target, "Cloudflare stand-in request");

        if let Some(fault) = self.faults.pop_front() {
            return fault.reply(uri, headers);
        }

        let path = uri.path();
        let Some(route) = path.strip_prefix("/client/v4") else {
            return Reply::Now(no_route(path).into_response());
        };
        let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
        let verify = segments == ["user", "tokens", "verify"];

        if let Err(failure) = self.authenticate(headers, verify) {
            return Reply::Now(failure.into_response());
        }
        let remaining = match self.take_rate_limit_slot() {
            Ok(remaining) => remaining,
            Err(retry_after) => return Reply::Now(rate_limited(Some(retry_after))),
        };

        let mut response = match (method, segments.as_slice()) {
            (&Method::GET, ["user", "tokens", "verify"]) => {
                let mut body = envelope(
                    true,
                    json!([]),
                    json!({"id": self.token_id, "status": "active"}),
                );
                body["messages"] = json!([{
                    "code": 10000,
                    "message": "This API Token is valid and active",
                    "type": null,
                }]);
                (StatusCode::OK, axum::Json(body)).into_response()
            }
            (&Method::GET, ["zones", zone, "dns_records"]) => match self.check_zone(zone, path) {
                Ok(()) => self.list(zone, uri.query()),
                Err(failure) => failure.into_response(),
            },
            (m, ["zones", zone, "dns_records", id])
                if m == Method::GET || m == Method::PATCH || m == Method::PUT =>
            {
                match self
                    .check_zone(zone, path)
                    .and_then(|()| self.find(zone, id, path))
                {
                    Ok(index) if m == Method::GET => ok(self.records[index].to_json()),
                    Ok(index) => self
                        .update(index, m == Method::PATCH, headers, body)
                        .unwrap_or_else(IntoResponse::into_response),
                    Err(failure) => failure.into_response(),
                }
            }
            _ => no_route(path).into_response(),
        };
        let limits = response.headers_mut();
        limits.insert(
            "ratelimit",
            header_value(&format!(
                "\"default\";r={remaining};t={}",
                RATE_LIMIT_WINDOW.as_secs()
            )),
        );
        limits.insert(
            "ratelimit-policy",
            header_value(&format!(
                "\"default\";q={RATE_LIMIT_REQUESTS};w={}",
                RATE_LIMIT_WINDOW.as_secs()
            )),
        );
        Reply::Now(response)
    }

    fn authenticate(&self, headers: &HeaderMap, verify: bool) -> Result<(), Failure> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(if verify {
                error(
                    StatusCode::BAD_REQUEST,
                    json!([{"code": 1001, "message": "Missing \"Authorization\" header"}]),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    json!([{
                        "code": 9106,
                        "message": "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
                    }]),
                )
            });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        match token {
            None => Err(error(
                StatusCode::BAD_REQUEST,
                json!([{
                    "code": 6003,
                    "message": "Invalid request headers",
                    "error_chain": [{
                        "code": 6111,
                        "message": "Invalid format for Authorization header",
                    }],
                }]),
            )),
            Some(token) if token == self.token => Ok(()),
            Some(_) if verify => Err(error(
                StatusCode::UNAUTHORIZED,
                json!([{"code": 1000, "message": "Invalid API Token"}]),
            )),
            Some(_) => Err(authentication_error()),
        }
    }

    /// Counts one authenticated request against the sliding window. `Ok` holds the
    /// requests left; `Err` the seconds until a slot frees up.
    fn take_rate_limit_slot(&mut self) -> Result<usize, u64> {
        let now = Instant::now();
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_LIMIT_WINDOW)
        {
            self.window.pop_front();
        }
        if self.window.len() >= RATE_LIMIT_REQUESTS {
            let oldest = self.window[0];
            let wait = RATE_LIMIT_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.window.push_back(now);
        Ok(RATE_LIMIT_REQUESTS - self.window.len())
    }

    fn check_zone(&self, zone: &str, path: &str) -> Result<(), Failure> {
        if self.records.iter().any(|s| s.record.zone_id == zone) {
            Ok(())
        } else if is_cloudflare_id(zone) {
            Err(authentication_error())
        } else {
            Err(no_route(path))
        }
    }

    fn find(&self, zone: &str, id: &str, path: &str) -> Result<usize, Failure> {
        if let Some(index) = self
            .records
            .iter()
            .position(|s| s.record.zone_id == zone && s.record.id == id)
        {
            Ok(index)
        } else if is_cloudflare_id(id) {
            Err(error(
                StatusCode::NOT_FOUND,
                json!([{"code": 81044, "message": "Record does not exist."}]),
            ))
        } else {
            Err(no_route(path))
        }
    }

    fn list(&self, zone: &str, query: Option<&str>) -> Response {
        let mut name = None;
        let mut r#type = None;
        let mut content = None;
        let mut page = 1usize;
        let mut per_page = 100usize;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "name" | "name.exact" => name = Some(value.into_owned()),
                "type" => r#type = Some(value.into_owned()),
                "content" | "content.exact" => content = Some(value.into_owned()),
                // Cloudflare clamps per_page to 5..=5000000; out-of-range pages give empty results.
                "page" => page = value.parse().unwrap_or(1).max(1),
                "per_page" => per_page = value.parse().unwrap_or(100).clamp(5, 5_000_000),
                _ => {}
            }
        }
        let matching: Vec<&Stored> = self
            .records
            .iter()
            .filter(|s| s.record.zone_id == zone)
            .filter(|s| {
                name.as_deref()
                    .is_none_or(|n| s.record.name.eq_ignore_ascii_case(n.trim_end_matches('.')))
            })
            .filter(|s| r#type.as_deref().is_none_or(|t| s.record.r#type == t))
            .filter(|s| content.as_deref().is_none_or(|c| s.record.content == c))
            .collect();
        let total = matching.len();
        let result: Vec<Value> = matching
            .iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .map(|s| s.to_json())
            .collect();
        let mut body = envelope(true, json!([]), json!(result));
        body["result_info"] = json!({
            "page": page,
            "per_page": per_page,
            "count": result.len(),
            "total_count": total,
            "total_pages": total.div_ceil(per_page).max(1),
        });
        (StatusCode::OK, axum::Json(body)).into_response()
    }

    /// `PATCH` (`partial`) or `PUT` of the record at `index`.
    fn update(
        &mut self,
        index: usize,
        partial: bool,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, Failure> {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !is_json {
            return Err(error(
                StatusCode::BAD_REQUEST,
                json!([{"code": 9207, "message": "Content-type must be application/json."}]),
            ));
        }
        let invalid_body = || {
            error(
                StatusCode::BAD_REQUEST,
                json!([{"code": 9207, "message": "Request body is invalid."}]),
            )
        };
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return Err(invalid_body());
        };
        let Some(change) = Change::parse(&fields) else {
            return Err(invalid_body());
        };
        if !partial
            && (change.r#type.is_none() || change.name.is_none() || change.content.is_none())
        {
            return Err(invalid_body());
        }

        let current = &self.records[index];
        let mut record = current.record.clone();
        let mut comment = current.comment.clone();
        let mut tags = current.tags.clone();
        if !partial {
            record.ttl = 1;
            record.proxied = false;
            comment = None;
            tags.clear();
        }
        if let Some(v) = change.content {
            record.content = v;
        }
        if let Some(v) = change.name {
            record.name = v.trim_end_matches('.').to_ascii_lowercase();
        }
        if let Some(v) = change.r#type {
            record.r#type = v.to_ascii_uppercase();
        }
        if let Some(v) = change.proxied {
            record.proxied = v;
        }
        if let Some(v) = change.comment {
            comment = v;
        }
        if let Some(v) = change.tags {
            tags = v;
        }
        if let Some(ttl) = change.ttl {
            if ttl != 1 && !(60..=86_400).contains(&ttl) {
                return Err(validation_error(
                    9021,
                    "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for automatic.",
                ));
            }
            record.ttl = ttl as u32;
        }
        validate(&record)?;

        let now = now_rfc3339();
        let stored = &mut self.records[index];
        stored.zone_name = zone_name_of(&record.name);
        stored.record = record;
        stored.comment = comment;
        stored.tags = tags;
        stored.modified_on = now;
        if partial {
            self.patches += 1;
        }
        Ok(ok(self.records[index].to_json()))
    }
}

/// The fields of a `PATCH`/`PUT` body the stand-in understands; others are ignored.
#[derive(Default)]
struct Change {
    content: Option<String>,
    name: Option<String>,
    r#type: Option<String>,
    ttl: Option<u64>,
    proxied: Option<bool>,
    comment: Option<Option<String>>,
    tags: Option<Vec<String>>,
}

impl Change {
    /// `None` if a known field has the wrong JSON type.
    fn parse(fields: &Map<String, Value>) -> Option<Change> {
        let string = |key: &str| match fields.get(key) {
            None => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        };
        Some(Change {
            content: string("content")?,
            name: string("name")?,
            r#type: string("type")?,
            ttl: match fields.get("ttl") {
                None => None,
                Some(v) => Some(v.as_u64()?),
            },
            proxied: match fields.get("proxied") {
                None => None,
                Some(v) => Some(v.as_bool()?),
            },
            comment: match fields.get("comment") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(_) => return None,
            },
            tags: match fields.get("tags") {
                None => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|t| t.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()?,
                ),
                Some(_) => return None,
            },
        })
    }
}

fn validate(record: &Record) -> Result<(), Failure> {
    match record.r#type.as_str() {
        "A" if record.content.parse::<std::net::Ipv4Addr>().is_err() => Err(validation_error(
            9005,
            "Content for A record is invalid. Must be a valid IPv4 address",
        )),
        "AAAA" if record.content.parse::<std::net::Ipv6Addr>().is_err() => Err(validation_error(
            9006,
            "Content for AAAA record is invalid. Must be a valid IPv6 address",
        )),
        _ if record.proxied && !proxiable(&record.r#type) => Err(validation_error(
            9041,
            "Invalid proxied mode. Record cannot be proxied",
        )),
        _ => Ok(()),
    }
}

fn proxiable(r#type: &str) -> bool {
    matches!(r#type, "A" | "AAAA" | "CNAME")
}

impl Stored {
    fn to_json(&self) -> Value {
        let r = &self.record;
        json!({
            "id": r.id,
            "zone_id": r.zone_id,
            "zone_name": self.zone_name,
            "name": r.name,
            "type": r.r#type,
            "content": r.content,
            "proxiable": proxiable(&r.r#type),
            "proxied": r.proxied,
            "ttl": r.ttl,
            "locked": false,
            "settings": {},
            "meta": {
                "auto_added": false,
                "managed_by_apps": false,
                "managed_by_argo_tunnel": false,
            },
            "comment": self.comment,
            "tags": self.tags,
            "created_on": self.created_on,
            "modified_on": self.modified_on,
        })
    }
}

fn ok(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(envelope(true, json!([]), result)),
    )
        .into_response()
}

/// Cloudflare's envelope; key order as Cloudflare sends it.
fn envelope(success: bool, errors: Value, result: Value) -> Value {
    json!({
        "success": success,
        "errors": errors,
        "messages": [],
        "result": result,
    })
}

/// A Cloudflare error answer: an HTTP status and the envelope's `errors` array. Kept
/// small (rather than a built `Response`) so `Result`s carrying it stay cheap.
struct Failure {
    status: StatusCode,
    errors: Value,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(envelope(false, self.errors, Value::Null)),
        )
            .into_response()
    }
}

fn error(status: StatusCode, errors: Value) -> Failure {
    Failure { status, errors }
}

fn authentication_error() -> Failure {
    error(
        StatusCode::FORBIDDEN,
        json!([{"code": 10000, "message": "Authentication error"}]),
    )
}

fn validation_error(code: u32, message: &str) -> Failure {
    error(
        StatusCode::BAD_REQUEST,
        json!([{
            "code": 1004,
            "message": "DNS Validation Error",
            "error_chain": [{"code": code, "message": message}],
        }]),
    )
}

fn no_route(path: &str) -> Failure {
    error(
        StatusCode::BAD_REQUEST,
        json!([
            {
                "code": 7003,
                "message": format!(
                    "Could not route to {path}, perhaps your object identifier is invalid?"
                ),
            },
            {"code": 7000, "message": "No route for that URI"},
        ]),
    )
}

fn rate_limited(retry_after_secs: Option<u64>) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        json!([{
            "code": 971,
            "message": "Please wait and consider throttling your request speed",
        }]),
    )
    .into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header_value(&secs.to_string()));
    }
    response
}

fn echo_authorization(headers: &HeaderMap) -> Response {
    let sent = headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    error(
        StatusCode::BAD_REQUEST,
        json!([{"code": 6003, "message": format!("bad header {sent}")}]),
    )
    .into_response()
}

fn server_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(
        status,
        json!([{
            "code": 10000 + u32::from(status.as_u16()),
            "message": status.canonical_reason().unwrap_or("Internal Server Error"),
        }]),
    )
    .into_response()
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("header values built here are ASCII")
}

fn is_cloudflare_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The last two labels of a record name: `db.example.com` → `example.com`.
fn zone_name_of(name: &str) -> String {
    let labels: Vec<&str> = name.split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

/// Now, as Cloudflare writes times: RFC 3339 in UTC with microseconds.
fn now_rfc3339() -> String {
    format!("{:.6}", jiff::Timestamp::now())
}

/// Random-looking 32-hex ids, unique within one stand-in.
struct IdSource {
    hasher: std::collections::hash_map::RandomState,
    counter: u64,
}

impl IdSource {
    fn new() -> IdSource {
        IdSource {
            hasher: std::collections::hash_map::RandomState::new(),
            counter: 0,
        }
    }

    fn next(&mut self) -> String {
        self.counter += 1;
        let half = |salt: u64| {
            let mut h = self.hasher.build_hasher();
            h.write_u64(self.counter);
            h.write_u64(salt);
            h.finish()
        };
        format!("{:016x}{:016x}", half(0), half(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY";
    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn get(cf: &CloudflareStandIn, path: &str) -> (u16, HeaderMap, Value) {
        let response = client()
            .get(format!("{}{path}", cf.api_base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap())
    }

    async fn patch(cf: &CloudflareStandIn, id: &str, body: Value) -> (u16, Value) {
        let response = client()
            .patch(format!("{}/zones/{ZONE}/dns_records/{id}", cf.api_base()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    #[tokio::test]
    async fn lists_by_name_and_type() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        let a = cf.add_record(ZONE, "db.example.com", "A", "192.0.2.1", 60, false);
        cf.add_record(ZONE, "db.example.com", "AAAA", "2001:db8::1", 60, false);
        cf.add_record(ZONE, "www.example.com", "A", "192.0.2.9", 1, true);
        cf.add_record(
            "b5b82f8d72414f849bd96a50e6228ece",
            "db.example.com",
            "A",
            "192.0.2.7",
            60,
            false,
        );
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));

        let (status, _, body) = get(
            &cf,
            &format!("/zones/{ZONE}/dns_records?name=DB.example.com&type=A"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["success"], true);
        assert_eq!(body["errors"], json!([]));
        assert_eq!(body["messages"], json!([]));
        assert_eq!(
            body["result_info"],
            json!({"page": 1, "per_page": 100, "count": 1, "total_count": 1, "total_pages": 1})
        );
        let record = &body["result"][0];
        assert_eq!(record["id"], a.as_str());
        assert_eq!(record["zone_id"], ZONE);
        assert_eq!(record["zone_name"], "example.com");
        assert_eq!(record["name"], "db.example.com");
        assert_eq!(record["type"], "A");
        assert_eq!(record["content"], "192.0.2.1");
        assert_eq!(record["ttl"], 60);
        assert_eq!(record["proxied"], false);
        assert_eq!(record["proxiable"], true);
        assert_eq!(record["locked"], false);
        assert_eq!(record["comment"], Value::Null);
        assert_eq!(record["tags"], json!([]));
        for time in ["created_on", "modified_on"] {
            let text = record[time].as_str().unwrap();
            assert!(text.parse::<jiff::Timestamp>().is_ok(), "{time}: {text}");
            assert!(text.ends_with('Z'), "{text}");
        }

        let (_, _, body) = get(
            &cf,
            &format!("/zones/{ZONE}/dns_records?name.exact=db.example.com"),
        )
        .await;
        assert_eq!(body["result"].as_array().unwrap().len(), 2);
        let (_, _, body) = get(&cf, &format!("/zones/{ZONE}/dns_records?type=A")).await;
        assert_eq!(body["result"].as_array().unwrap().len(), 2);
        let (_, _, body) = get(
            &cf,
            &format!("/zones/{ZONE}/dns_records?name=nope.example.com"),
        )
        .await;
        assert_eq!(body["result"], json!([]));
        assert_eq!(body["result_info"]["total_pages"], 1);
        assert_eq!(
            cf.requests()[0],
            format!("GET /client/v4/zones/{ZONE}/dns_records?name=DB.example.com&type=A")
        );
    }

    #[tokio::test]
    async fn pages() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        for i in 0..7 {
            cf.add_record(
                ZONE,
                &format!("h{i}.example.com"),
                "A",
                "192.0.2.1",
                1,
                false,
            );
        }
        let (_, _, body) = get(&cf, &format!("/zones/{ZONE}/dns_records?per_page=5&page=2")).await;
        assert_eq!(body["result"].as_array().unwrap().len(), 2);
        assert_eq!(body["result"][0]["name"], "h5.example.com");
        assert_eq!(
            body["result_info"],
            json!({"page": 2, "per_page": 5, "count": 2, "total_count": 7, "total_pages": 2})
        );
    }

    #[tokio::test]
    async fn patches_and_reads_back() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        let id = cf.add_record(ZONE, "db.example.com", "A", "192.0.2.1", 60, false);
        let before = cf.record(&id).unwrap();

        let (status, body) = patch(&cf, &id, json!({"content": "192.0.2.2"})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["result"]["content"], "192.0.2.2");
        assert_eq!(body["result"]["ttl"], 60);
        assert_ne!(body["result"]["modified_on"], body["result"]["created_on"]);

        let (status, _, body) = get(&cf, &format!("/zones/{ZONE}/dns_records/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["result"]["content"], "192.0.2.2");
        assert_eq!(
            cf.record(&id),
            Some(Record {
                content: "192.0.2.2".into(),
                ..before.clone()
            })
        );

        let (status, body) = patch(
            &cf,
            &id,
            json!({"ttl": 120, "proxied": true, "comment": "failover", "tags": ["a:b"]}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["comment"], "failover");
        assert_eq!(body["result"]["tags"], json!(["a:b"]));
        let after = cf.record(&id).unwrap();
        assert_eq!((after.ttl, after.proxied), (120, true));
        assert_eq!(cf.patch_count(), 2);
        assert_eq!(cf.records(), vec![after]);

        // PUT replaces: unspecified fields go back to their defaults.
        let response = client()
            .put(format!("{}/zones/{ZONE}/dns_records/{id}", cf.api_base()))
            .bearer_auth(TOKEN)
            .json(&json!({"type": "A", "name": "db.example.com", "content": "192.0.2.3"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let record = cf.record(&id).unwrap();
        assert_eq!(
            (record.content.as_str(), record.ttl, record.proxied),
            ("192.0.2.3", 1, false)
        );
        assert_eq!(cf.patch_count(), 2);
    }

    #[tokio::test]
    async fn rejects_bad_updates() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        let id = cf.add_record(ZONE, "db.example.com", "A", "192.0.2.1", 60, false);
        let url = format!("{}/zones/{ZONE}/dns_records/{id}", cf.api_base());

        let response = client()
            .patch(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"success": false, "errors": [{"code": 9207, "message": "Request body is invalid."}], "messages": [], "result": null})
        );

        let response = client()
            .patch(&url)
            .bearer_auth(TOKEN)
            .body(r#"{"content":"192.0.2.2"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], 9207);
        assert_eq!(
            body["errors"][0]["message"],
            "Content-type must be application/json."
        );

        let (status, body) = patch(&cf, &id, json!({"ttl": "60"})).await;
        assert_eq!((status, &body["errors"][0]["code"]), (400, &json!(9207)));

        let (status, body) = patch(&cf, &id, json!({"ttl": 30})).await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["code"], 1004);
        assert_eq!(body["errors"][0]["error_chain"][0]["code"], 9021);

        let (status, body) = patch(&cf, &id, json!({"content": "not-an-ip"})).await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["error_chain"][0]["code"], 9005);

        assert_eq!(cf.record(&id).unwrap().content, "192.0.2.1");
        assert_eq!(cf.patch_count(), 0);
    }

    #[tokio::test]
    async fn unknown_ids() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        cf.add_record(ZONE, "db.example.com", "A", "192.0.2.1", 60, false);

        let missing = "372e67954025e0ba6aaa6d586b9e0b59";
        let (status, _, body) = get(&cf, &format!("/zones/{ZONE}/dns_records/{missing}")).await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"success": false, "errors": [{"code": 81044, "message": "Record does not exist."}], "messages": [], "result": null})
        );

        let (status, _, body) = get(&cf, &format!("/zones/{missing}/dns_records")).await;
        assert_eq!(status, 403);
        assert_eq!(
            body["errors"],
            json!([{"code": 10000, "message": "Authentication error"}])
        );

        let (status, _, body) = get(&cf, "/zones/example.com/dns_records").await;
        assert_eq!(status, 400);
        assert_eq!(
            body["errors"],
            json!([
                {"code": 7003, "message": "Could not route to /client/v4/zones/example.com/dns_records, perhaps your object identifier is invalid?"},
                {"code": 7000, "message": "No route for that URI"},
            ])
        );
    }

    #[tokio::test]
    async fn authentication() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        cf.add_record(ZONE, "db.example.com", "A", "192.0.2.1", 60, false);
        let url = format!("{}/zones/{ZONE}/dns_records", cf.api_base());
        let verify = format!("{}/user/tokens/verify", cf.api_base());

        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], 9106);

        let response = client()
            .get(&url)
            .header("authorization", format!("Token {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({
                "success": false,
                "errors": [{
                    "code": 6003,
                    "message": "Invalid request headers",
                    "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}],
                }],
                "messages": [],
                "result": null,
            })
        );

        let response = client()
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], "messages": [], "result": null})
        );

        let response = client()
            .get(&verify)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"],
            json!([{"code": 1000, "message": "Invalid API Token"}])
        );

        let response = client()
            .get(&verify)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("ratelimit"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["success"], true);
        assert_eq!(body["result"]["status"], "active");
        assert_eq!(body["result"]["id"].as_str().unwrap().len(), 32);
        assert_eq!(
            body["messages"][0]["message"],
            "This API Token is valid and active"
        );
    }

    #[tokio::test]
    async fn injected_faults_then_normal_service() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        cf.add_record(ZONE, "db.example.com", "A", "192.0.2.1", 60, false);
        let path = format!("/zones/{ZONE}/dns_records?name=db.example.com&type=A");
        cf.inject([
            Fault::Status(500),
            Fault::RateLimited {
                retry_after_secs: 7,
            },
        ]);

        let (status, _, body) = get(&cf, &path).await;
        assert_eq!(status, 500);
        assert_eq!(body["success"], false);
        assert_eq!(body["errors"][0]["message"], "Internal Server Error");
        assert_eq!(body["result"], Value::Null);

        let (status, headers, body) = get(&cf, &path).await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "7");
        assert_eq!(
            body,
            json!({"success": false, "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}], "messages": [], "result": null})
        );

        let (status, _, body) = get(&cf, &path).await;
        assert_eq!(status, 200);
        assert_eq!(body["result"][0]["content"], "192.0.2.1");
        assert_eq!(cf.requests().len(), 3);
    }

    #[tokio::test]
    async fn echo_authorization_sends_the_token_back_in_its_error() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        cf.inject([Fault::EchoAuthorization]);
        let (status, _, body) = get(&cf, "/user/tokens/verify").await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"success": false, "errors": [{"code": 6003, "message": format!("bad header Bearer {TOKEN}")}], "messages": [], "result": null})
        );
        let (status, _, _) = get(&cf, "/user/tokens/verify").await;
        assert_eq!(status, 200, "one request only");
    }

    #[tokio::test]
    async fn hang_makes_the_client_time_out() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        cf.inject([Fault::Hang]);
        let url = format!("{}/user/tokens/verify", cf.api_base());
        let quick = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let err = quick.get(&url).bearer_auth(TOKEN).send().await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        let response = quick.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(cf.requests(), vec!["GET /client/v4/user/tokens/verify"; 2]);
    }

    #[tokio::test]
    async fn enforces_the_rate_limit() {
        let cf = CloudflareStandIn::start(TOKEN).await.unwrap();
        let url = format!("{}/user/tokens/verify", cf.api_base());
        let client = client();
        for _ in 0..RATE_LIMIT_REQUESTS {
            let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
        let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 429);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], 971);
    }
}
