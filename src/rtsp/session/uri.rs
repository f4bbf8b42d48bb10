//! Request-URIs: the path a request names, and the base of the URLs the
//! answers carry.

/// The request-URI's path without query, trailing slash or scheme/authority.
pub(super) fn uri_path(uri: &str) -> Option<&str> {
    if uri == "*" {
        return Some("*");
    }
    let rest = if let Some(r) = uri
        .strip_prefix("rtsp://")
        .or_else(|| uri.strip_prefix("RTSP://"))
    {
        match r.find('/') {
            Some(i) => &r[i..],
            None => "/",
        }
    } else if uri.starts_with('/') {
        uri
    } else {
        return None;
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    Some(rest.trim_end_matches('/'))
}

/// The request-URI without query, fragment or trailing slash (the base of
/// Content-Base and RTP-Info URLs).
pub(super) fn base_uri(uri: &str) -> &str {
    uri.split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
}
