use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::rtsp::auth::User;

const GET: &[u8] = b"GET /api/status?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTpw\r\n\r\n";

#[test]
fn parses_a_head_split_at_every_byte() {
    for cut in 0..GET.len() {
        assert_eq!(parse(&GET[..cut], 8192).unwrap(), None, "cut at {cut}");
    }
    let (req, used) = parse(GET, 8192).unwrap().unwrap();
    assert_eq!(used, GET.len());
    assert_eq!(req.path, "/api/status");
    assert_eq!(req.query, "x=1");
    assert_eq!(req.target, "/api/status?x=1");
    assert_eq!(req.authorization.as_deref(), Some("Basic dTpw"));
    assert!(!req.close);
}

#[test]
fn refuses_oversized_and_malformed_heads() {
    assert_eq!(parse(GET, 20), Err(ParseError::TooLarge(20)));
    let long = vec![b'a'; 100];
    assert_eq!(parse(&long, 50), Err(ParseError::TooLarge(50)));
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 8192),
        Err(ParseError::Syntax(_))
    ));
    assert_eq!(
        parse(b"GET http://x/ HTTP/1.1\r\n\r\n", 8192),
        Err(ParseError::Target)
    );
    let (r, _) = parse(b"GET / HTTP/1.0\r\n\r\n", 8192).unwrap().unwrap();
    assert!(r.close);
}

fn req(method: &str, target: &str, auth: Option<&str>) -> Request {
    let head = format!(
        "{method} {target} HTTP/1.1\r\n{}\r\n",
        auth.map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default()
    );
    parse(head.as_bytes(), 8192).unwrap().unwrap().0
}

#[test]
fn routes_without_users() {
    let s = Settings::default();
    let now = Instant::now();
    assert_eq!(route(&req("GET", "/", None), &s, now), Route::Page);
    assert_eq!(route(&req("GET", "/live.mp4", None), &s, now), Route::Live);
    assert_eq!(
        route(&req("GET", "/metrics", None), &s, now),
        Route::Metrics
    );
    assert_eq!(
        route(&req("POST", "/live/whep", None), &s, now),
        Route::Whep
    );
    let Route::Reply(r) = route(&req("GET", "/nope", None), &s, now) else {
        panic!()
    };
    assert_eq!(r.status, 404);
    let Route::Reply(r) = route(&req("POST", "/live.mp4", None), &s, now) else {
        panic!()
    };
    assert_eq!(r.status, 405);
}

#[test]
fn every_endpoint_needs_credentials_but_public_metrics() {
    let now = Instant::now();
    let auth = Authenticator::new(
        vec![User::with_password("u", "p").unwrap()],
        true,
        [7; 32],
        now,
    );
    let mut s = Settings {
        auth: Some(Arc::new(auth)),
        metrics_public: false,
    };
    for path in ["/", "/live.mp4", "/api/status", "/metrics", "/snapshot.jpg"] {
        let Route::Reply(r) = route(&req("GET", path, None), &s, now) else {
            panic!("{path} open")
        };
        assert_eq!(r.status, 401);
        assert!(
            r.get_header("WWW-Authenticate")
                .unwrap()
                .starts_with("Digest ")
        );
        // Basic u:p
        assert_ne!(
            route(&req("GET", path, Some("Basic dTpw")), &s, now),
            Route::Reply(r)
        );
        let wrong = route(&req("GET", path, Some("Basic dTpx")), &s, now);
        assert!(matches!(wrong, Route::Reply(r) if r.status == 401));
    }
    s.metrics_public = true;
    assert_eq!(
        route(&req("GET", "/metrics", None), &s, now),
        Route::Metrics
    );
}

#[test]
fn responses_serialize() {
    let r = Response::new(200, "text/plain", b"hi".to_vec()).header("X-A", "1");
    let bytes = String::from_utf8(r.to_bytes(false, false)).unwrap();
    assert!(bytes.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n"));
    assert!(bytes.ends_with("Content-Length: 2\r\n\r\nhi"));
    let head = String::from_utf8(r.chunked_head()).unwrap();
    assert!(head.ends_with("Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"));
    let mut line = Vec::new();
    chunk_size_line(300, &mut line);
    assert_eq!(line, b"12c\r\n");
}
