//! A resumable, bounded parser for what an RTSP 1.0 client sends a server
//! (RFC 2326 §6): requests, and `$`-framed interleaved data (§10.12, RTCP
//! receiver reports over TCP).
//!
//! Feed it the bytes received so far. It answers [`Parsed::Incomplete`] when
//! more are needed, and fails as soon as a byte breaks the grammar, even
//! before the message is complete, with the byte position and the rule
//! broken. Nothing is allocated; the request borrows the buffer.
//!
//! Leniency, on purpose: bare LF line ends are accepted as CRLF (RFC 2616
//! §19.3 tolerance, seen from some clients), leading empty lines before a
//! request are skipped (RFC 2616 §4.1), header names match case-insensitively.
//! Not accepted: header line folding (obsolete), non-UTF-8 header values,
//! versions other than RTSP/1.0 (answered 505 by the caller).

use std::fmt;

/// The most header lines a request may carry.
pub const MAX_HEADERS: usize = 32;

/// Size limits for untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line and headers, up to and including the empty line.
    pub max_header_bytes: usize,
    /// The body announced by Content-Length.
    pub max_body_bytes: usize,
    /// The Request-URI.
    pub max_uri_bytes: usize,
}

impl Default for Limits {
    /// `max_header_bytes`: the `max-request-bytes` key's default.
    fn default() -> Self {
        Self {
            max_header_bytes: crate::config::Config::default().max_request_bytes,
            max_body_bytes: 4 * 1024,
            max_uri_bytes: 2 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// One parsed request. Borrows the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// Minor version: always 0 (RTSP/1.0) once parsed; 1.x others fail.
    pub headers: heapless::Vec<Header<'a>, MAX_HEADERS>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The CSeq header, if present and numeric.
    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq")?.trim().parse().ok()
    }
}

/// A message from the client.
// A request is about 1 KiB (its bounded header list) and lives on the stack
// for one call; boxing it would allocate per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Request(Request<'a>),
    /// Interleaved binary data (`$`, channel, 16-bit length, payload).
    Interleaved {
        channel: u8,
        payload: &'a [u8],
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Valid so far; more bytes are needed.
    Incomplete,
    /// A whole message, and how many bytes of the input it used.
    Complete(Message<'a>, usize),
}

/// What was wrong, named after the grammar rule (RFC 2326 §6, RFC 2616 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Method = token`: a byte that is not a token character.
    Method,
    /// `Request-URI`: a control character or space inside, or empty.
    Uri,
    /// The Request-URI is longer than the limit.
    UriTooLong,
    /// `RTSP-Version = "RTSP" "/" 1*DIGIT "." 1*DIGIT`.
    Version,
    /// A well-formed version other than RTSP/1.0.
    UnsupportedVersion,
    /// A line does not end with CRLF (or LF) where it must.
    LineEnd,
    /// `field-name = token`, followed by `:`.
    HeaderName,
    /// A control character in a header value, or not UTF-8.
    HeaderValue,
    /// A header line starting with whitespace (obsolete line folding).
    Folding,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Request line plus headers exceed the limit.
    HeadersTooLarge,
    /// `Content-Length = 1*DIGIT`.
    ContentLength,
    /// The announced body exceeds the limit.
    BodyTooLarge,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Method => "method is not a token (RFC 2326 §6.1)",
            Self::Uri => "Request-URI is empty or contains a control character",
            Self::UriTooLong => "Request-URI is too long",
            Self::Version => "malformed RTSP-Version, expected RTSP/1.0",
            Self::UnsupportedVersion => "RTSP version not supported, expected RTSP/1.0",
            Self::LineEnd => "expected CRLF",
            Self::HeaderName => "header name is not a token followed by ':'",
            Self::HeaderValue => "header value contains a control character or is not UTF-8",
            Self::Folding => "header line folding is not supported",
            Self::TooManyHeaders => "too many header lines",
            Self::HeadersTooLarge => "request header block is too large",
            Self::ContentLength => "Content-Length is not a decimal number",
            Self::BodyTooLarge => "request body is too large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ErrorKind,
    /// Byte offset in the input where the problem was found.
    pub pos: usize,
}

impl ParseError {
    /// The status code and reason phrase to answer with (the connection is
    /// closed afterwards: a parser cannot resynchronize on a byte stream).
    pub fn status(&self) -> (u16, &'static str) {
        match self.kind {
            ErrorKind::UriTooLong => (414, "Request-URI Too Large"),
            ErrorKind::UnsupportedVersion => (505, "RTSP Version Not Supported"),
            ErrorKind::BodyTooLarge => (413, "Request Entity Too Large"),
            _ => (400, "Bad Request"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind.describe(), self.pos)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(kind: ErrorKind, pos: usize) -> Result<T, ParseError> {
    Err(ParseError { kind, pos })
}

/// RFC 2616 §2.2 `token` characters.
fn is_token(b: u8) -> bool {
    matches!(b, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'0'..=b'9' | b'A'..=b'Z' | b'^'..=b'z' | b'|' | b'~')
}

/// Parses one message from the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, ParseError> {
    if buf.first() == Some(&b'$') {
        return Ok(parse_interleaved(buf));
    }
    parse_request(buf, limits)
}

fn parse_interleaved(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < 4 {
        return Parsed::Incomplete;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if buf.len() < 4 + len {
        return Parsed::Incomplete;
    }
    Parsed::Complete(
        Message::Interleaved {
            channel: buf[1],
            payload: &buf[4..4 + len],
        },
        4 + len,
    )
}

/// Reads a line ending at `pos`: returns (end of content, start of next line)
/// or `None` if the buffer ends first.
fn line_end(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let nl = pos + buf[pos..].iter().position(|&b| b == b'\n')?;
    let end = if nl > pos && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

fn parse_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, ParseError> {
    // The header block, bounded; checked again once its end is known.
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let mut pos = 0;
    while pos < window.len() && matches!(window[pos], b'\r' | b'\n') {
        pos += 1;
    }

    // Method SP
    let start = pos;
    while pos < window.len() && is_token(window[pos]) {
        pos += 1;
    }
    if pos == window.len() {
        return incomplete(buf, limits);
    }
    if window[pos] != b' ' || pos == start {
        return err(ErrorKind::Method, pos);
    }
    let method = ascii(&window[start..pos]);
    pos += 1;

    // Request-URI SP
    let start = pos;
    while pos < window.len() && window[pos] > b' ' && window[pos] != 0x7f {
        if pos - start >= limits.max_uri_bytes {
            return err(ErrorKind::UriTooLong, pos);
        }
        pos += 1;
    }
    if pos == window.len() {
        return incomplete(buf, limits);
    }
    if window[pos] != b' ' || pos == start {
        return err(ErrorKind::Uri, pos);
    }
    let uri = std::str::from_utf8(&window[start..pos]).map_err(|e| ParseError {
        kind: ErrorKind::Uri,
        pos: start + e.valid_up_to(),
    })?;
    pos += 1;

    // RTSP-Version CRLF
    let start = pos;
    let Some((end, next)) = line_end(window, pos) else {
        // Check what is there so far.
        if !version_prefix_ok(&window[start..]) {
            return err(ErrorKind::Version, start);
        }
        return incomplete(buf, limits);
    };
    match &window[start..end] {
        b"RTSP/1.0" => {}
        v if version_prefix_ok(v) && is_version(v) => {
            return err(ErrorKind::UnsupportedVersion, start);
        }
        _ => return err(ErrorKind::Version, start),
    }
    pos = next;

    // Headers until the empty line.
    let mut headers = heapless::Vec::new();
    loop {
        let Some((end, next)) = line_end(window, pos) else {
            check_partial_header(&window[pos..], pos)?;
            return incomplete(buf, limits);
        };
        if end == pos {
            pos = next;
            break;
        }
        let header = parse_header(&window[pos..end], pos)?;
        headers.push(header).map_err(|_| ParseError {
            kind: ErrorKind::TooManyHeaders,
            pos,
        })?;
        pos = next;
    }

    let mut req = Request {
        method,
        uri,
        headers,
        body: &[],
    };
    let body_len = match req.header("Content-Length") {
        None => 0,
        Some(v) => {
            let v = v.trim();
            if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return err(ErrorKind::ContentLength, pos);
            }
            let n: u64 = v.parse().unwrap_or(u64::MAX);
            if n > limits.max_body_bytes as u64 {
                return err(ErrorKind::BodyTooLarge, pos);
            }
            n as usize
        }
    };
    if buf.len() < pos + body_len {
        return Ok(Parsed::Incomplete);
    }
    req.body = &buf[pos..pos + body_len];
    Ok(Parsed::Complete(Message::Request(req), pos + body_len))
}

fn incomplete<'a>(buf: &[u8], limits: &Limits) -> Result<Parsed<'a>, ParseError> {
    if buf.len() >= limits.max_header_bytes {
        return err(ErrorKind::HeadersTooLarge, limits.max_header_bytes);
    }
    Ok(Parsed::Incomplete)
}

fn ascii(b: &[u8]) -> &str {
    // Only called on bytes already checked to be token characters (ASCII).
    std::str::from_utf8(b).unwrap_or_default()
}

/// Whether `v` could still become `RTSP/<digits>.<digits>`.
fn version_prefix_ok(v: &[u8]) -> bool {
    let v = v.strip_suffix(b"\r").unwrap_or(v);
    let fixed = b"RTSP/";
    let n = v.len().min(fixed.len());
    if v[..n] != fixed[..n] {
        return false;
    }
    v[n..].iter().all(|&b| b.is_ascii_digit() || b == b'.')
        && v[n..].iter().filter(|&&b| b == b'.').count() <= 1
}

fn is_version(v: &[u8]) -> bool {
    let Some(rest) = v.strip_prefix(b"RTSP/") else {
        return false;
    };
    let mut parts = rest.split(|&b| b == b'.');
    let (Some(major), Some(minor), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !major.is_empty() && !minor.is_empty()
}

/// Validates the start of a header line that has not ended yet.
fn check_partial_header(line: &[u8], pos: usize) -> Result<(), ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Ok(());
    }
    if matches!(line[0], b' ' | b'\t') {
        return err(ErrorKind::Folding, pos);
    }
    match line.iter().position(|&b| !is_token(b)) {
        None => Ok(()),
        Some(i) if line[i] == b':' && i > 0 => check_value(&line[i + 1..], pos + i + 1).map(|_| ()),
        Some(i) => err(ErrorKind::HeaderName, pos + i),
    }
}

fn check_value(v: &[u8], pos: usize) -> Result<&str, ParseError> {
    if let Some(i) = v
        .iter()
        .position(|&b| (b < b' ' && b != b'\t') || b == 0x7f)
    {
        return err(ErrorKind::HeaderValue, pos + i);
    }
    std::str::from_utf8(v).map_err(|e| ParseError {
        kind: ErrorKind::HeaderValue,
        pos: pos + e.valid_up_to(),
    })
}

fn parse_header(line: &[u8], pos: usize) -> Result<Header<'_>, ParseError> {
    if matches!(line[0], b' ' | b'\t') {
        return err(ErrorKind::Folding, pos);
    }
    let colon = line.iter().position(|&b| !is_token(b));
    let colon = match colon {
        Some(i) if i > 0 && line[i] == b':' => i,
        Some(i) => return err(ErrorKind::HeaderName, pos + i),
        None => return err(ErrorKind::HeaderName, pos + line.len()),
    };
    let value = check_value(&line[colon + 1..], pos + colon + 1)?;
    Ok(Header {
        name: ascii(&line[..colon]),
        value: value.trim_matches(|c| c == ' ' || c == '\t'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[&str] = &[
        "OPTIONS rtsp://127.0.0.1:8554/live RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)\r\n\r\n",
        "DESCRIBE rtsp://h/live RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n\r\n",
        "SETUP rtsp://h/live/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
        "PLAY rtsp://h/live/ RTSP/1.0\nCSeq: 4\nSession: 12345678\nRange: npt=0.000-\n\n",
        "GET_PARAMETER rtsp://h/live RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 4\r\n\r\nping",
        "\r\nTEARDOWN * RTSP/1.0\r\ncseq:6\r\nX-Empty:\r\n\r\n",
    ];

    fn parse_all(input: &[u8]) -> Parsed<'_> {
        parse(input, &Limits::default()).unwrap()
    }

    #[test]
    fn every_valid_message_split_at_every_byte() {
        for msg in VALID {
            let b = msg.as_bytes();
            for i in 0..b.len() {
                match parse(&b[..i], &Limits::default()) {
                    Ok(Parsed::Incomplete) => {}
                    other => panic!("{msg:?} cut at {i}: {other:?}"),
                }
            }
            let Parsed::Complete(Message::Request(req), n) = parse_all(b) else {
                panic!("{msg:?} did not parse");
            };
            assert_eq!(n, b.len());
            assert!(req.cseq().is_some(), "{msg:?}");
            // Followed by another message, it stops at its own end.
            let two = [b, b].concat();
            let Parsed::Complete(_, n2) = parse_all(&two) else {
                panic!()
            };
            assert_eq!(n2, b.len());
        }
    }

    #[test]
    fn fields_are_borrowed_and_trimmed() {
        let Parsed::Complete(Message::Request(r), _) = parse_all(VALID[4].as_bytes()) else {
            panic!()
        };
        assert_eq!(r.method, "GET_PARAMETER");
        assert_eq!(r.uri, "rtsp://h/live");
        assert_eq!(r.header("content-length"), Some("4"));
        assert_eq!(r.body, b"ping");
        let Parsed::Complete(Message::Request(r), _) = parse_all(VALID[5].as_bytes()) else {
            panic!()
        };
        assert_eq!(r.cseq(), Some(6));
        assert_eq!(r.header("x-empty"), Some(""));
    }

    #[test]
    fn interleaved_data() {
        let data = [b'$', 1, 0, 3, 9, 8, 7, b'O'];
        for i in 0..7 {
            assert_eq!(parse_all(&data[..i]), Parsed::Incomplete);
        }
        assert_eq!(
            parse_all(&data),
            Parsed::Complete(
                Message::Interleaved {
                    channel: 1,
                    payload: &[9, 8, 7]
                },
                7
            )
        );
    }

    fn error_of(input: &[u8]) -> ParseError {
        match parse(input, &Limits::default()) {
            Err(e) => e,
            Ok(p) => panic!("{:?} parsed as {p:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn bad_messages_fail_with_rule_and_position() {
        let cases: &[(&[u8], ErrorKind, usize)] = &[
            (b"\x16\x03\x01\x02\x00", ErrorKind::Method, 0),
            (b"GET\x00", ErrorKind::Method, 3),
            (b" OPTIONS", ErrorKind::Method, 0),
            (b"OPTIONS  RTSP/1.0\r\n", ErrorKind::Uri, 8),
            (b"OPTIONS * HTTP/1.1\r\n", ErrorKind::Version, 10),
            (b"OPTIONS * HTTP", ErrorKind::Version, 10),
            (
                b"OPTIONS * RTSP/2.0\r\n\r\n",
                ErrorKind::UnsupportedVersion,
                10,
            ),
            (b"OPTIONS * RTSP/1.0 x\r\n", ErrorKind::Version, 10),
            (
                b"OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n",
                ErrorKind::HeaderName,
                24,
            ),
            (b"OPTIONS * RTSP/1.0\r\nCSeq 1", ErrorKind::HeaderName, 24),
            (
                b"OPTIONS * RTSP/1.0\r\n: 1\r\n\r\n",
                ErrorKind::HeaderName,
                20,
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nA: \x01\r\n\r\n",
                ErrorKind::HeaderValue,
                23,
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nA: \xff\xfe\r\n\r\n",
                ErrorKind::HeaderValue,
                23,
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nA: 1\r\n b\r\n\r\n",
                ErrorKind::Folding,
                26,
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
                ErrorKind::ContentLength,
                42,
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nContent-Length: 99999999999\r\n\r\n",
                ErrorKind::ContentLength,
                51,
            ),
            (
                b"OPTIONS * RTSP/1.0\r\nContent-Length: 5000\r\n\r\n",
                ErrorKind::BodyTooLarge,
                44,
            ),
        ];
        for &(input, kind, pos) in cases {
            let e = error_of(input);
            assert_eq!(
                (e.kind, e.pos),
                (kind, pos),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(error_of(b"OPTIONS * RTSP/2.0\r\n").status().0, 505);
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits::default();
        let mut big = b"OPTIONS * RTSP/1.0\r\n".to_vec();
        while big.len() < limits.max_header_bytes + 10 {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        // Too many header lines comes first here...
        assert_eq!(error_of(&big).kind, ErrorKind::TooManyHeaders);
        // ...and one huge header never completes within the limit.
        let mut huge = b"OPTIONS * RTSP/1.0\r\nX-Pad: ".to_vec();
        huge.resize(limits.max_header_bytes + 1, b'a');
        let e = error_of(&huge);
        assert_eq!(e.kind, ErrorKind::HeadersTooLarge);
        assert_eq!(e.status().0, 400);
        let mut uri = b"OPTIONS rtsp://".to_vec();
        uri.resize(limits.max_uri_bytes + 100, b'a');
        let e = error_of(&uri);
        assert_eq!(e.kind, ErrorKind::UriTooLong);
        assert_eq!(e.status().0, 414);
        assert!(e.to_string().contains("too long"));
    }
}
