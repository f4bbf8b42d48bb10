//! HTTP/1.1 requests (RFC 9112) in, routing and responses out. Pure: the
//! I/O adapter ([`super::server`]) hands in the bytes read so far and the
//! time, and writes what comes back.

use std::fmt;
use std::time::Instant;

use crate::rtsp::auth::{Authenticator, Outcome};

/// Headers parsed per request, at most.
pub const MAX_HEADERS: usize = 32;

/// One parsed request head (no body: every route so far is a GET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request-target as sent (what Digest's `uri` names).
    pub target: String,
    /// The path part of the target.
    pub path: String,
    /// The query part, without `?`.
    pub query: String,
    pub authorization: Option<String>,
    /// `Content-Type`, if sent (WHEP's offer is `application/sdp`).
    pub content_type: Option<String>,
    /// Announced body length (a GET has none; WHEP's POST will).
    pub content_length: usize,
    /// HTTP/1.0 or `Connection: close`.
    pub close: bool,
}

/// Why a request head is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The head is longer than the limit (`max-request-bytes`).
    TooLarge(usize),
    /// Not `HTTP-message` (RFC 9112 section 2.1); httparse names the part.
    Syntax(httparse::Error),
    /// `request-target` is not in origin-form (RFC 9112 section 3.2.1).
    Target,
    /// A `Content-Length` that is not a number or beyond the limit.
    ContentLength,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(n) => write!(f, "request head exceeds {n} bytes"),
            Self::Syntax(e) => write!(f, "malformed HTTP-message: {e}"),
            Self::Target => f.write_str("request-target is not origin-form (/path?query)"),
            Self::ContentLength => f.write_str("Content-Length is not a number within the limit"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a request head from the start of `buf`: `Ok(None)` while it is
/// incomplete, else the request and the bytes it used.
pub fn parse(buf: &[u8], max_head: usize) -> Result<Option<(Request, usize)>, ParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= max_head => n,
        Ok(httparse::Status::Complete(_)) => return Err(ParseError::TooLarge(max_head)),
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(ParseError::TooLarge(max_head));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ParseError::Syntax(e)),
    };
    let target = req.path.unwrap_or("/").to_string();
    if !target.starts_with('/') {
        return Err(ParseError::Target);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let mut authorization = None;
    let mut content_type = None;
    let mut content_length = 0;
    let mut close = req.version == Some(0);
    for h in req.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).trim().to_string();
        if h.name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value());
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            content_length = value()
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= max_head)
                .ok_or(ParseError::ContentLength)?;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value().to_ascii_lowercase();
            close |= v.contains("close");
        }
    }
    Ok(Some((
        Request {
            method: req.method.unwrap_or("GET").to_string(),
            target,
            path,
            query,
            authorization,
            content_type,
            content_length,
            close,
        },
        used,
    )))
}

/// The WHEP endpoint (WebRTC playback).
pub const WHEP_PATH: &str = "/live/whep";

/// `/live/whep` or one of its sessions (`/live/whep/ID`).
pub fn is_whep_path(path: &str) -> bool {
    path == WHEP_PATH
        || path
            .strip_prefix(WHEP_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What a request asks for, once it passed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Page,
    Live,
    Status,
    Metrics,
    Snapshot,
    /// WebRTC playback (WHEP): `/live/whep` and its sessions
    /// (`/live/whep/ID`); see [`super::whep`].
    Whep,
    /// Answer this and go on.
    Reply(Response),
}

/// How the server treats requests.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub auth: Option<std::sync::Arc<Authenticator>>,
    /// `/metrics` without credentials.
    pub metrics_public: bool,
}

/// Routes a request: authentication first (on every endpoint, `/metrics`
/// excepted when it is public), then method and path.
pub fn route(req: &Request, settings: &Settings, now: Instant) -> Route {
    let resource = match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/" | "/index.html") => Route::Page,
        ("GET", "/live.mp4") => Route::Live,
        ("GET" | "HEAD", "/api/status") => Route::Status,
        ("GET" | "HEAD", "/metrics") => Route::Metrics,
        ("GET", "/snapshot.jpg") => Route::Snapshot,
        // CORS preflights carry no credentials (Fetch standard): answered
        // before authentication.
        ("OPTIONS", p) if is_whep_path(p) => return Route::Whep,
        (_, p) if is_whep_path(p) => Route::Whep,
        (_, "/" | "/index.html" | "/live.mp4" | "/api/status" | "/metrics" | "/snapshot.jpg") => {
            return Route::Reply(
                Response::error(405, format!("{} is not allowed here; use GET", req.method))
                    .header("Allow", "GET"),
            );
        }
        _ => {
            return Route::Reply(Response::error(
                404,
                format!(
                    "nothing at {}; try / (the live page), /live.mp4, /api/status, /metrics or /snapshot.jpg",
                    req.path
                ),
            ));
        }
    };
    let public = resource == Route::Metrics && settings.metrics_public;
    if let (Some(auth), false) = (&settings.auth, public) {
        let stale = match auth.check(&req.method, &req.target, req.authorization.as_deref(), now) {
            Outcome::Ok(_) => return resource,
            Outcome::Stale(_) => true,
            Outcome::Denied(why) => {
                log::debug!("http: {} {}: {why}", req.method, req.path);
                false
            }
        };
        let mut r = Response::error(401, "credentials needed (the RTSP users)");
        for c in auth.challenges(now, stale) {
            r = r.header("WWW-Authenticate", &c);
        }
        return Route::Reply(r);
    }
    resource
}

/// A complete response (body included), or the head of a streamed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The standard reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    /// A status with a plain-text explanation.
    pub fn error(status: u16, detail: impl Into<String>) -> Self {
        let mut body = detail.into().into_bytes();
        body.extend_from_slice(b"\r\n");
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    #[cfg(test)]
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn head_into(&self, out: &mut Vec<u8>, close: bool) {
        use std::io::Write;
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            let _ = write!(out, "{n}: {v}\r\n");
        }
        out.extend_from_slice(b"Cache-Control: no-store\r\n");
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
    }

    /// The whole response; `head_only` for HEAD requests.
    pub fn to_bytes(&self, close: bool, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        self.head_into(&mut out, close);
        let _ = std::io::Write::write_fmt(
            &mut out,
            format_args!("Content-Length: {}\r\n\r\n", self.body.len()),
        );
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// The head of a chunked, endless response (the body is ignored).
    pub fn chunked_head(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.head_into(&mut out, true);
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        out
    }
}

/// The size line that opens a chunk of `len` bytes (RFC 9112 section 7.1).
pub fn chunk_size_line(len: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = write!(out, "{len:x}\r\n");
}

#[cfg(test)]
mod tests;
