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

use std::fmt;
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

/// Why a user entry (`user:password` or an htdigest line) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserError {
    /// Empty, too long, or with ':', '"', '\\' or control characters.
    BadName(String),
    EmptyPassword(String),
    /// An htdigest line for another realm.
    Realm {
        name: String,
        realm: String,
    },
    /// Neither `user:password` nor `user:realm:md5hex`.
    NotAnEntry(String),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(name) => write!(
                f,
                "user name {name:?} must be 1-{MAX_USER} characters without ':', '\"', '\\' or control characters"
            ),
            Self::EmptyPassword(name) => write!(f, "user {name:?} has an empty password"),
            Self::Realm { name, realm } => write!(
                f,
                "user {name:?}: htdigest realm {realm:?} is not {REALM:?} (create it with `htdigest FILE {REALM} {name}`)"
            ),
            Self::NotAnEntry(line) => {
                write!(f, "{line:?} is not user:password or user:realm:md5hex")
            }
        }
    }
}

impl std::error::Error for UserError {}

/// Most auth-params accepted in one header.
const MAX_PARAMS: usize = 16;

/// Why an auth-param list (RFC 2617 §1.2) did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// More than this many parameters.
    TooMany(usize),
    /// `auth-param = token "=" ( token | quoted-string )`: no `=` value.
    NoValue(String),
    /// A `quoted-string` without its closing quote.
    Unterminated(String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany(n) => write!(f, "more than {n} parameters"),
            Self::NoValue(name) => write!(f, "parameter {name:?} has no value"),
            Self::Unterminated(name) => write!(f, "unterminated quoted value of {name:?}"),
        }
    }
}

impl std::error::Error for ParamError {}

impl User {
    /// A user from a name and a clear-text password.
    pub fn with_password(name: &str, password: &str) -> Result<Self, UserError> {
        if !valid_user_name(name) {
            return Err(UserError::BadName(name.into()));
        }
        if password.is_empty() {
            return Err(UserError::EmptyPassword(name.into()));
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
    pub fn parse(line: &str) -> Result<Self, UserError> {
        let mut parts = line.splitn(3, ':');
        let (name, second, third) = (parts.next().unwrap_or(""), parts.next(), parts.next());
        match (second, third) {
            (Some(realm), Some(h)) if h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                if realm != REALM {
                    return Err(UserError::Realm {
                        name: name.into(),
                        realm: realm.into(),
                    });
                }
                if !valid_user_name(name) {
                    return Err(UserError::BadName(name.into()));
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
            (None, _) => Err(UserError::NotAnEntry(line.into())),
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
pub fn parse_params(s: &str) -> Result<Vec<(String, String)>, ParamError> {
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
        if out.len() >= MAX_PARAMS {
            return Err(ParamError::TooMany(MAX_PARAMS));
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
            return Err(ParamError::NoValue(name));
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
                    None => return Err(ParamError::Unterminated(name)),
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
mod tests;
