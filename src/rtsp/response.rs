//! RTSP responses (RFC 2326 §7) and their serialization.

use std::borrow::Cow;
use std::fmt::Write;

/// One response, built by the session logic and written by the I/O layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: Cow<'static, str>,
    headers: Vec<(&'static str, String)>,
    content_type: Option<&'static str>,
    body: String,
}

impl Response {
    pub fn new(status: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            content_type: None,
            body: String::new(),
        }
    }

    pub fn ok() -> Self {
        Self::new(200, "OK")
    }

    /// A status with its standard reason phrase; the explanation goes into a
    /// text/plain body (clients match reason phrases, so they stay standard).
    pub fn error(status: u16, detail: impl Into<String>) -> Self {
        let mut r = Self::new(status, reason_phrase(status));
        let mut detail = detail.into();
        detail.push_str("\r\n");
        r.content_type = Some("text/plain");
        r.body = detail;
        r
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_body(mut self, content_type: &'static str, body: String) -> Self {
        self.content_type = Some(content_type);
        self.body = body;
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &str {
        &self.body
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Serializes the response, echoing `cseq` when the request had one.
    pub fn write_to(&self, cseq: Option<u32>, out: &mut Vec<u8>) {
        let mut s = String::with_capacity(256 + self.body.len());
        // Writing to a String cannot fail.
        let _ = write!(s, "RTSP/1.0 {} {}\r\n", self.status, self.reason);
        if let Some(cseq) = cseq {
            let _ = write!(s, "CSeq: {cseq}\r\n");
        }
        let _ = write!(s, "Server: edgestream/{}\r\n", env!("CARGO_PKG_VERSION"));
        for (name, value) in &self.headers {
            let _ = write!(s, "{name}: {value}\r\n");
        }
        if let Some(ct) = self.content_type {
            let _ = write!(s, "Content-Type: {ct}\r\n");
        }
        if !self.body.is_empty() || self.content_type.is_some() {
            let _ = write!(s, "Content-Length: {}\r\n", self.body.len());
        }
        s.push_str("\r\n");
        s.push_str(&self.body);
        out.extend_from_slice(s.as_bytes());
    }
}

/// RFC 2326 §7.1.1 reason phrases.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        451 => "Parameter Not Understood",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        457 => "Invalid Range",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_cseq_and_length() {
        let mut out = Vec::new();
        Response::ok()
            .with_header("Public", "OPTIONS")
            .with_body("application/sdp", "v=0\r\n".into())
            .write_to(Some(7), &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("RTSP/1.0 200 OK\r\nCSeq: 7\r\nServer: edgestream/"));
        assert!(s.contains("\r\nPublic: OPTIONS\r\n"));
        assert!(s.ends_with("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        let mut out = Vec::new();
        Response::error(454, "no such session").write_to(None, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("RTSP/1.0 454 Session Not Found\r\nServer:"));
        assert!(s.ends_with("\r\n\r\nno such session\r\n"));
    }
}
