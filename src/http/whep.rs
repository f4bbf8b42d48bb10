//! WHEP (draft-ietf-wish-whep) over the HTTP face: `POST /live/whep` with
//! an SDP offer answers `201 Created`, the session's `Location` and the SDP
//! answer; `DELETE` on the location ends the session; `OPTIONS` answers
//! CORS preflights. Trickle ICE (`PATCH`) is not offered: the answer has
//! all our candidates (ICE-lite, host candidates only), so it says 405.

use super::request::{Request, Response};

pub use super::request::WHEP_PATH as PATH;

/// The session id in a session's path (`/live/whep/` + 16 hex digits).
pub fn session_id(path: &str) -> Option<u64> {
    let hex = path.strip_prefix(PATH)?.strip_prefix('/')?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A session's location.
pub fn location(id: u64) -> String {
    format!("{PATH}/{id:016x}")
}

fn cors(r: Response) -> Response {
    r.header("Access-Control-Allow-Origin", "*").header(
        "Access-Control-Expose-Headers",
        "Location, X-Edgestream-Clock-Ms",
    )
}

/// What WHEP does with a request, given the sessions' owner.
pub trait Sessions {
    /// The session id and the SDP answer for an offer.
    fn offer(&self, sdp: &str) -> Result<(u64, String), crate::webrtc::WhepError>;
    /// Ends a session; `false` if there is none by that id.
    fn delete(&self, id: u64) -> bool;
}

/// Answers a WHEP request; `sessions` is `None` when WebRTC is off.
pub fn respond(sessions: Option<&dyn Sessions>, req: &Request, body: &[u8]) -> Response {
    let allow = if req.path == PATH {
        "POST, OPTIONS"
    } else {
        "DELETE, OPTIONS"
    };
    if req.method == "OPTIONS" {
        return cors(Response::new(204, "text/plain", Vec::new()))
            .header("Allow", allow)
            .header("Access-Control-Allow-Methods", allow)
            .header(
                "Access-Control-Allow-Headers",
                "Content-Type, Authorization",
            )
            .header("Access-Control-Max-Age", "600")
            .header("Accept-Post", "application/sdp");
    }
    let Some(sessions) = sessions else {
        return cors(Response::error(
            503,
            "WebRTC is off (webrtc-udp = \"off\", or its port could not be bound); use /live.mp4",
        ));
    };
    match (req.method.as_str(), req.path == PATH) {
        ("POST", true) => {
            let sdp_type = req.content_type.as_deref().is_some_and(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/sdp"))
            });
            if !sdp_type {
                return cors(Response::error(
                    415,
                    "send the SDP offer as application/sdp",
                ))
                .header("Accept-Post", "application/sdp");
            }
            let Ok(sdp) = std::str::from_utf8(body) else {
                return cors(Response::error(400, "the SDP offer is not UTF-8"));
            };
            match sessions.offer(sdp) {
                Ok((id, answer)) => {
                    // Wall clock minus CLOCK_MONOTONIC: RTP timestamps are
                    // capture times on the latter (90 kHz).
                    let wall = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                    let mono = crate::clock::monotonic_now().as_secs_f64() * 1000.0;
                    cors(Response::new(201, "application/sdp", answer.into_bytes()))
                        .header("Location", &location(id))
                        .header("X-Edgestream-Clock-Ms", &format!("{:.3}", wall - mono))
                }
                Err(e) => {
                    let mut detail = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        detail.push_str(&format!(": {s}"));
                        src = s.source();
                    }
                    log::info!("webrtc: refused an offer: {detail}");
                    let r = cors(Response::error(e.status(), detail));
                    if e.status() == 503 {
                        r.header("Retry-After", "10")
                    } else {
                        r
                    }
                }
            }
        }
        ("DELETE", false) => match session_id(&req.path) {
            Some(id) if sessions.delete(id) => cors(Response::new(200, "text/plain", Vec::new())),
            _ => cors(Response::error(404, "no such WebRTC session")),
        },
        _ => cors(Response::error(
            405,
            format!("{} is not allowed here; use {allow}", req.method),
        ))
        .header("Allow", allow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::is_whep_path;

    #[test]
    fn session_paths() {
        assert!(is_whep_path("/live/whep"));
        assert!(is_whep_path("/live/whep/00000000000000ff"));
        assert!(!is_whep_path("/live/whepx"));
        assert_eq!(session_id(&location(255)), Some(255));
        assert_eq!(session_id("/live/whep/ff"), None);
        assert_eq!(session_id("/live/whep"), None);
    }
}
