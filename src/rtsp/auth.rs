//! RTSP authentication: HTTP Digest (RFC 2617, MD5, with or without
//! `qop=auth`) as VLC/live555, ffmpeg, GStreamer and retina send it, and
//! optionally Basic. Pure code: the time comes in as an `Instant`.
//!
//! - Only HA1 = MD5(user:realm:password) is kept per user, so an htdigest
//!   file works as is and Basic credentials are checked by hashing them the
//!   same way.
//! - Nonces are stateless: a timestamp and a keyed MD5 of it under a random
//!   secret drawn at startup. They expire after [`NONCE_LIFETIME`]; a client
//!   with the right password and an expired nonce gets `stale=TRUE` and
//!   retries without asking its user (RFC 2617 §3.2.1).
//! - Comparisons of secrets are constant-time (`subtle`), and an unknown
//!   user costs the same work as a known one.

use std::time::{Duration, Instant};

use base64::Engine;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// The protection space announced in challenges.
pub const REALM: &str = "edgestream";
/// How long a nonce is accepted for a new authentication.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Longest user name accepted.
const MAX_USER: usize = 64;

/// A user and their HA1 = MD5(user:realm:password).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    ha1: [u8; 16],
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the hash.
        write!(f, "User({:?})", self.name)
    }
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER
        && name
            .chars()
            .all(|c| !c.is_control() && c != ':' && c != '"' && c != '\\')
}

impl User {
    /// A user from a name and a clear-text password.
    pub fn with_password(name: &str, password: &str) -> Result<Self, String> {
        if !valid_user_name(name) {
            return Err(format!(
                "user name {name:?} must be 1-{MAX_USER} characters without ':', '\"', '\\' or control characters"
            ));
        }
        if password.is_empty() {
            return Err(format!("user {name:?} has an empty password"));
        }
        let mut ha1 = [0u8; 16];
        let mut h = Md5::new();
        h.update(format!("{name}:{REALM}:{password}").as_bytes());
        ha1.copy_from_slice(&h.finalize());
        Ok(Self {
            name: name.into(),
            ha1,
        })
    }

    /// Parses `user:password` or an htdigest line `user:realm:md5hex`.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut parts = line.splitn(3, ':');
        let (name, second, third) = (parts.next().unwrap_or(""), parts.next(), parts.next());
        match (second, third) {
            (Some(realm), Some(h)) if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                if realm != REALM {
                    return Err(format!(
                        "user {name:?}: htdigest realm {realm:?} is not {REALM:?} (create it with `htdigest FILE {REALM} {name}`)"
                    ));
                }
                if !valid_user_name(name) {
                    return Err(format!("user name {name:?} is not valid"));
                }
                let mut ha1 = [0u8; 16];
                ha1.copy_from_slice(&unhex(h).unwrap_or_default());
                Ok(Self {
                    name: name.into(),
                    ha1,
                })
            }
            (Some(_), _) => {
                // user:password (the password may contain ':').
                let password = &line[name.len() + 1..];
                Self::with_password(name, password)
            }
            (None, _) => Err(format!(
                "{line:?} is not user:password or user:realm:md5hex"
            )),
        }
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated as this user.
    Ok(String),
    /// Right credentials, expired nonce: challenge again with `stale=TRUE`.
    Stale(String),
    /// No or wrong credentials; the reason is for the server's log.
    Denied(String),
}

/// Checks credentials and issues challenges.
pub struct Authenticator {
    users: Vec<User>,
    basic: bool,
    secret: [u8; 32],
    epoch: Instant,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users)
            .field("basic", &self.basic)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `secret` keys the nonces: draw it from a CSPRNG at startup.
    pub fn new(users: Vec<User>, basic: bool, secret: [u8; 32], epoch: Instant) -> Self {
        Self {
            users,
            basic,
            secret,
            epoch,
        }
    }

    fn mac(&self, stamp: u64) -> String {
        md5_hex(&[&self.secret, &stamp.to_be_bytes(), b"edgestream-nonce"])
    }

    fn nonce(&self, now: Instant) -> String {
        let stamp = now.saturating_duration_since(self.epoch).as_secs();
        format!("{stamp:016x}{}", self.mac(stamp))
    }

    /// Whether the nonce is ours (`Some`) and still fresh (`Some(true)`).
    fn nonce_state(&self, nonce: &str, now: Instant) -> Option<bool> {
        if nonce.len() != 48 {
            return None;
        }
        let stamp = u64::from_str_radix(nonce.get(..16)?, 16).ok()?;
        let mac = nonce.get(16..)?;
        if !bool::from(mac.as_bytes().ct_eq(self.mac(stamp).as_bytes())) {
            return None;
        }
        let age = now
            .saturating_duration_since(self.epoch)
            .as_secs()
            .saturating_sub(stamp);
        Some(age <= NONCE_LIFETIME.as_secs())
    }

    /// `WWW-Authenticate` header values for a 401.
    pub fn challenges(&self, now: Instant, stale: bool) -> Vec<String> {
        let mut v = vec![format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5{}",
            self.nonce(now),
            if stale { ", stale=TRUE" } else { "" }
        )];
        if self.basic {
            v.push(format!("Basic realm=\"{REALM}\""));
        }
        v
    }

    fn lookup(&self, name: &str) -> (Option<&User>, [u8; 16]) {
        match self.users.iter().find(|u| u.name == name) {
            Some(u) => (Some(u), u.ha1),
            // A stand-in so unknown users cost the same as known ones.
            None => (None, [0x5a; 16]),
        }
    }

    /// Checks the Authorization header of a request.
    pub fn check(
        &self,
        method: &str,
        request_uri: &str,
        header: Option<&str>,
        now: Instant,
    ) -> Outcome {
        let Some(header) = header else {
            return Outcome::Denied("no credentials".into());
        };
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("Digest") {
            self.check_digest(method, request_uri, rest, now)
        } else if scheme.eq_ignore_ascii_case("Basic") && self.basic {
            self.check_basic(rest.trim())
        } else {
            Outcome::Denied(format!("unsupported scheme {scheme:?}"))
        }
    }

    fn check_basic(&self, b64: &str) -> Outcome {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return Outcome::Denied("malformed Basic credentials".into());
        };
        let Ok(text) = String::from_utf8(raw) else {
            return Outcome::Denied("malformed Basic credentials".into());
        };
        let Some((name, password)) = text.split_once(':') else {
            return Outcome::Denied("malformed Basic credentials".into());
        };
        let (user, ha1) = self.lookup(name);
        let given = md5_hex(&[name.as_bytes(), REALM.as_bytes(), password.as_bytes()]);
        let ok = bool::from(given.as_bytes().ct_eq(hex(&ha1).as_bytes()));
        match (user, ok) {
            (Some(u), true) => Outcome::Ok(u.name.clone()),
            _ => Outcome::Denied(format!("wrong password or unknown user {name:?} (Basic)")),
        }
    }

    fn check_digest(&self, method: &str, request_uri: &str, params: &str, now: Instant) -> Outcome {
        let p = match parse_params(params) {
            Ok(p) => p,
            Err(e) => return Outcome::Denied(format!("malformed Digest credentials: {e}")),
        };
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let (Some(name), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return Outcome::Denied(
                "Digest credentials lack username, realm, nonce, uri or response".into(),
            );
        };
        if realm != REALM {
            return Outcome::Denied(format!("realm {realm:?} is not {REALM:?}"));
        }
        if get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
            return Outcome::Denied("only algorithm=MD5 is supported".into());
        }
        if !same_resource(uri, request_uri) {
            return Outcome::Denied(format!("digest uri {uri:?} does not match the request"));
        }
        let Some(fresh) = self.nonce_state(nonce, now) else {
            return Outcome::Denied("a nonce this server did not issue".into());
        };
        let (user, ha1) = self.lookup(name);
        let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
        let ha1 = hex(&ha1);
        let expected = match get("qop") {
            None => md5_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else {
                    return Outcome::Denied("qop=auth without nc or cnonce".into());
                };
                md5_hex(&[
                    ha1.as_bytes(),
                    nonce.as_bytes(),
                    nc.as_bytes(),
                    cnonce.as_bytes(),
                    b"auth",
                    ha2.as_bytes(),
                ])
            }
            Some(q) => return Outcome::Denied(format!("qop={q} is not supported")),
        };
        let ok = bool::from(
            expected
                .as_bytes()
                .ct_eq(response.to_ascii_lowercase().as_bytes()),
        );
        match (user, ok, fresh) {
            (Some(u), true, true) => Outcome::Ok(u.name.clone()),
            (Some(u), true, false) => Outcome::Stale(u.name.clone()),
            _ => Outcome::Denied(format!("wrong password or unknown user {name:?}")),
        }
    }
}

/// Whether the digest `uri` names the same resource as the request-URI.
/// Clients differ (absolute or relative, a trailing slash), so paths are
/// compared.
fn same_resource(digest_uri: &str, request_uri: &str) -> bool {
    fn path(u: &str) -> &str {
        let rest = match u.find("://") {
            Some(i) => {
                let after = &u[i + 3..];
                after.find('/').map_or("/", |j| &after[j..])
            }
            None => u,
        };
        rest.split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
    }
    digest_uri == request_uri || path(digest_uri) == path(request_uri)
}

/// Parses `k=v, k="quoted \"v\""` lists (RFC 2617 auth-param), bounded.
pub fn parse_params(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        if out.len() >= 16 {
            return Err("too many parameters".into());
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' && b[i] != b' ' {
            i += 1;
        }
        let name = s[start..i].to_string();
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' || name.is_empty() {
            return Err(format!("parameter {name:?} has no value"));
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(format!("unterminated quoted value of {name:?}")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        // Escapes are ASCII; copy the escaped character.
                        let c = s[i + 1..].chars().next().unwrap_or_default();
                        value.push(c);
                        i += 1 + c.len_utf8();
                    }
                    Some(_) => {
                        let c = s[i..].chars().next().unwrap_or_default();
                        value.push(c);
                        i += c.len_utf8();
                    }
                }
            }
        } else {
            let start = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value.push_str(s[start..i].trim());
        }
        out.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(basic: bool) -> (Authenticator, Instant) {
        let epoch = Instant::now();
        let users = vec![
            User::parse("viewer:s3cret:with:colons").unwrap(),
            // htdigest line for admin/admin in realm edgestream.
            User::parse(&format!(
                "admin:{REALM}:{}",
                md5_hex(&[b"admin", REALM.as_bytes(), b"admin"])
            ))
            .unwrap(),
        ];
        (Authenticator::new(users, basic, [7; 32], epoch), epoch)
    }

    fn nonce_of(challenge: &str) -> String {
        let p = parse_params(challenge.strip_prefix("Digest ").unwrap()).unwrap();
        p.into_iter().find(|(k, _)| k == "nonce").unwrap().1
    }

    fn digest(user: &str, pass: &str, method: &str, uri: &str, nonce: &str, qop: bool) -> String {
        let ha1 = md5_hex(&[user.as_bytes(), REALM.as_bytes(), pass.as_bytes()]);
        let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
        if qop {
            let r = md5_hex(&[
                ha1.as_bytes(),
                nonce.as_bytes(),
                b"00000001",
                b"abcd",
                b"auth",
                ha2.as_bytes(),
            ]);
            format!(
                "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", qop=auth, nc=00000001, cnonce=\"abcd\", algorithm=MD5"
            )
        } else {
            let r = md5_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]);
            format!(
                "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\""
            )
        }
    }

    const URI: &str = "rtsp://127.0.0.1:8554/live";

    #[test]
    fn digest_with_and_without_qop() {
        let (a, t0) = auth(false);
        let ch = a.challenges(t0, false);
        assert_eq!(ch.len(), 1);
        assert!(ch[0].starts_with("Digest realm=\"edgestream\", nonce=\""));
        let n = nonce_of(&ch[0]);
        for qop in [false, true] {
            let h = digest("viewer", "s3cret:with:colons", "DESCRIBE", URI, &n, qop);
            assert_eq!(
                a.check("DESCRIBE", URI, Some(&h), t0),
                Outcome::Ok("viewer".into())
            );
            let h = digest(
                "admin",
                "admin",
                "SETUP",
                "rtsp://127.0.0.1:8554/live/trackID=0",
                &n,
                qop,
            );
            assert_eq!(
                a.check(
                    "SETUP",
                    "rtsp://127.0.0.1:8554/live/trackID=0",
                    Some(&h),
                    t0
                ),
                Outcome::Ok("admin".into())
            );
        }
    }

    #[test]
    fn wrong_credentials_and_forged_nonces_are_denied() {
        let (a, t0) = auth(false);
        let n = nonce_of(&a.challenges(t0, false)[0]);
        let denied = |h: &str| matches!(a.check("DESCRIBE", URI, Some(h), t0), Outcome::Denied(_));
        assert!(denied(&digest(
            "viewer", "wrong", "DESCRIBE", URI, &n, false
        )));
        assert!(denied(&digest(
            "nobody",
            "s3cret:with:colons",
            "DESCRIBE",
            URI,
            &n,
            false
        )));
        // Right password, but signed for another method or resource.
        assert!(denied(&digest(
            "viewer",
            "s3cret:with:colons",
            "PLAY",
            URI,
            &n,
            false
        )));
        assert!(denied(&digest(
            "viewer",
            "s3cret:with:colons",
            "DESCRIBE",
            "rtsp://h/other",
            &n,
            false
        )));
        // A nonce we never issued (MAC does not verify).
        let forged = format!("{:016x}{}", 0, "0".repeat(32));
        assert!(denied(&digest(
            "viewer",
            "s3cret:with:colons",
            "DESCRIBE",
            URI,
            &forged,
            false
        )));
        assert!(matches!(
            a.check("DESCRIBE", URI, None, t0),
            Outcome::Denied(_)
        ));
        assert!(denied("Digest username=\"viewer\""));
        assert!(denied("Digest garbage"));
        assert!(denied("Basic dmlld2VyOnMzY3JldA=="), "Basic is off");
        assert!(denied("Bearer x"));
    }

    #[test]
    fn nonces_expire_into_stale() {
        let (a, t0) = auth(false);
        let n = nonce_of(&a.challenges(t0, false)[0]);
        let h = digest("viewer", "s3cret:with:colons", "DESCRIBE", URI, &n, false);
        let later = t0 + NONCE_LIFETIME + Duration::from_secs(2);
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h), later),
            Outcome::Stale("viewer".into())
        );
        let wrong = digest("viewer", "nope", "DESCRIBE", URI, &n, false);
        assert!(matches!(
            a.check("DESCRIBE", URI, Some(&wrong), later),
            Outcome::Denied(_)
        ));
        assert!(a.challenges(later, true)[0].ends_with("stale=TRUE"));
    }

    #[test]
    fn basic_when_enabled() {
        let (a, t0) = auth(true);
        assert_eq!(a.challenges(t0, false)[1], "Basic realm=\"edgestream\"");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            a.check(
                "DESCRIBE",
                URI,
                Some(&format!("Basic {}", b64("viewer:s3cret:with:colons"))),
                t0
            ),
            Outcome::Ok("viewer".into())
        );
        assert!(matches!(
            a.check(
                "DESCRIBE",
                URI,
                Some(&format!("Basic {}", b64("viewer:x"))),
                t0
            ),
            Outcome::Denied(_)
        ));
        assert!(matches!(
            a.check("DESCRIBE", URI, Some("Basic !!!"), t0),
            Outcome::Denied(_)
        ));
    }

    #[test]
    fn user_entries() {
        assert!(User::parse("nopassword").is_err());
        assert!(User::parse("a:").is_err());
        assert!(User::parse(":pw").is_err());
        assert!(
            User::parse(&format!("a:otherrealm:{}", "0".repeat(32)))
                .unwrap_err()
                .contains("realm")
        );
        assert_eq!(format!("{:?}", User::parse("x:y").unwrap()), "User(\"x\")");
    }

    #[test]
    fn params_parser() {
        let p =
            parse_params(r#"username="a\"b", realm=edgestream , qop=auth,nc=00000001"#).unwrap();
        assert_eq!(p[0], ("username".into(), "a\"b".into()));
        assert_eq!(p[1], ("realm".into(), "edgestream".into()));
        assert_eq!(p[3], ("nc".into(), "00000001".into()));
        assert!(parse_params("a=\"open").is_err());
        assert!(parse_params("novalue").is_err());
        assert!(parse_params(&"a=1,".repeat(17)).is_err());
        assert!(parse_params("").unwrap().is_empty());
        assert!(same_resource("/live/", "rtsp://h:1/live"));
        assert!(!same_resource("/live2", "rtsp://h:1/live"));
    }
}
