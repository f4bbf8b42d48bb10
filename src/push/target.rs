//! Push target URLs: `rtmp[s]://host[:port]/app[/instance]/stream[?query]` and
//! `tcp://host:port/name`, parsed once at startup with messages that say
//! what to write instead.

use std::fmt;

use crate::rtmp::PublishParams;

/// RTMP's registered port.
pub const RTMP_PORT: u16 = 1935;
/// RTMPS's usual port (YouTube, Facebook, Twitch ingest).
pub const RTMPS_PORT: u16 = 443;

/// What kind of server a target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP publish.
    Rtmp(PublishParams),
    /// Raw FLV over TCP; the name goes into onMetaData `streamName`.
    Flv { stream_name: String },
}

/// One push target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// As given.
    pub url: String,
    /// Host name or IP literal (without brackets).
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    /// `rtmps://`: RTMP inside TLS.
    pub tls: bool,
}

/// Why a URL is not a push target: the URL, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub url: String,
    pub kind: TargetErrorKind,
}

/// What is wrong with a push URL. `example` is a URL of the same scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetErrorKind {
    /// No `scheme://`.
    NotUrl,
    /// A scheme other than rtmp, rtmps or tcp; `hint` says what to use.
    Scheme { scheme: String, hint: &'static str },
    /// `user:password@` in the URL.
    Credentials,
    /// The authority is not `host[:port]`.
    Authority {
        authority: String,
        example: &'static str,
    },
    /// No host or no stream name.
    NoStream { example: &'static str },
    /// Spaces or control characters in the path.
    BadPath,
    /// RTMP needs `app/stream`.
    NoApp { example: &'static str },
    /// Port 0.
    PortZero,
    /// `tcp://` needs a port.
    NoPort { example: &'static str },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TargetErrorKind::*;
        let url = &self.url;
        match &self.kind {
            NotUrl => write!(f, "{url:?} is not a URL; {FORMS}"),
            Scheme { scheme, hint } => write!(
                f,
                "{url:?}: scheme {scheme}:// is not supported; use rtmp://, rtmps:// or tcp://{hint}"
            ),
            Credentials => write!(
                f,
                "{url:?}: user names and passwords in the URL are not supported; put the key in the stream name or query, e.g. rtmp://server/live/cam1?key=SECRET"
            ),
            Authority { authority, example } => write!(
                f,
                "{url:?}: {authority:?} is not a host[:port]; e.g. {example}"
            ),
            NoStream { example } => {
                write!(f, "{url:?} needs a host and a stream name, e.g. {example}")
            }
            BadPath => write!(f, "{url:?}: the path has spaces or control characters"),
            PortZero => write!(f, "{url:?}: port 0 is not a port"),
            NoApp { example } => write!(
                f,
                "{url:?} needs an application and a stream name, e.g. {example}"
            ),
            NoPort { example } => write!(
                f,
                "{url:?}: tcp:// needs a port (crtmpserver's inboundLiveFlv listens on 6666), e.g. {example}"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

const FORMS: &str =
    "use rtmp://host[:port]/app/stream, rtmps://host[:port]/app/stream or tcp://host:port/name";

impl PushTarget {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let url = url.trim();
        let fail = |kind| TargetError {
            url: url.to_string(),
            kind,
        };
        let err = |kind| Err(fail(kind));
        let Some((scheme, rest)) = url.split_once("://") else {
            return err(TargetErrorKind::NotUrl);
        };
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "rtmp" | "rtmps" | "tcp") {
            let hint = match scheme.as_str() {
                "tcps" => "; for TLS use rtmps://",
                "srt" | "http" | "https" => "; only RTMP, RTMPS and raw FLV over TCP are supported",
                _ => "",
            };
            return err(TargetErrorKind::Scheme { scheme, hint });
        }
        let tls = scheme == "rtmps";
        let example = match scheme.as_str() {
            "rtmp" => "rtmp://server/live/cam1",
            "rtmps" => "rtmps://server/live/cam1",
            _ => "tcp://server:6666/cam1",
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return err(TargetErrorKind::Credentials);
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| {
            fail(TargetErrorKind::Authority {
                authority: authority.to_string(),
                example,
            })
        })?;
        if host.is_empty() {
            return err(TargetErrorKind::NoStream { example });
        }
        let path_only = path.split(['?', '#']).next().unwrap_or("");
        if path_only.trim_matches('/').is_empty() {
            return err(TargetErrorKind::NoStream { example });
        }
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return err(TargetErrorKind::BadPath);
        }
        let (protocol, port) = if scheme != "tcp" {
            let (app_path, query) = match path.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (path, None),
            };
            let app_path = app_path.trim_end_matches('/');
            let Some((app, stream)) = app_path.rsplit_once('/') else {
                return err(TargetErrorKind::NoApp { example });
            };
            let app = app.trim_matches('/');
            if app.is_empty() || stream.is_empty() {
                return err(TargetErrorKind::NoApp { example });
            }
            let default_port = if tls { RTMPS_PORT } else { RTMP_PORT };
            let port = port.unwrap_or(default_port);
            let tc_host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let tc_url =
                if port == default_port && !authority.contains(']') && !authority.contains(':') {
                    format!("{scheme}://{tc_host}/{app}")
                } else {
                    format!("{scheme}://{tc_host}:{port}/{app}")
                };
            let stream = match query {
                Some(q) => format!("{stream}?{q}"),
                None => stream.to_string(),
            };
            (
                Protocol::Rtmp(PublishParams {
                    app: app.to_string(),
                    tc_url,
                    stream,
                }),
                port,
            )
        } else {
            let Some(port) = port else {
                return err(TargetErrorKind::NoPort { example });
            };
            let name = path_only.trim_matches('/');
            (
                Protocol::Flv {
                    stream_name: name.to_string(),
                },
                port,
            )
        };
        if port == 0 {
            return err(TargetErrorKind::PortZero);
        }
        Ok(Self {
            url: url.to_string(),
            host: host.to_string(),
            port,
            protocol,
            tls,
        })
    }

    /// The target as shown in logs and the stats line: only secrets are
    /// hidden, so two targets can be told apart. A query string is always
    /// hidden (`?****`); an RTMP stream name that looks like a stream key
    /// (see [`looks_like_a_key`]) is hidden (`****`), a readable one such
    /// as `cam1` or `front-door` is shown.
    pub fn display_name(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.protocol {
            Protocol::Rtmp(p) => {
                let (scheme, default_port) = if self.tls {
                    ("rtmps", RTMPS_PORT)
                } else {
                    ("rtmp", RTMP_PORT)
                };
                let port = if self.port == default_port {
                    String::new()
                } else {
                    format!(":{}", self.port)
                };
                format!(
                    "{scheme}://{host}{port}/{}/{}",
                    p.app,
                    mask_stream(&p.stream)
                )
            }
            Protocol::Flv { stream_name } => {
                format!("tcp://{host}:{}/{stream_name}", self.port)
            }
        }
    }
}

/// A stream name as shown: a key-like name becomes `****`, a query string
/// `?****`.
fn mask_stream(stream: &str) -> String {
    let (name, query) = match stream.split_once('?') {
        Some((n, _)) => (n, "?****"),
        None => (stream, ""),
    };
    let name = if looks_like_a_key(name) { "****" } else { name };
    format!("{name}{query}")
}

/// Whether an RTMP stream name is probably a secret stream key: longer than
/// 12 characters (YouTube, Twitch and Facebook keys are 20 and more), or
/// with 6 or more digits (`live_123456789_...`). Names people choose (`cam`,
/// `cam1`, `front-door`) are shorter.
pub fn looks_like_a_key(name: &str) -> bool {
    name.chars().count() > 12 || name.chars().filter(char::is_ascii_digit).count() >= 6
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.split_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtmp(url: &str) -> (PushTarget, PublishParams) {
        let t = PushTarget::parse(url).unwrap();
        match &t.protocol {
            Protocol::Rtmp(p) => (t.clone(), p.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rtmp_forms() {
        let (t, p) = rtmp("rtmp://server/live/cam1");
        assert_eq!((t.host.as_str(), t.port), ("server", 1935));
        assert_eq!(p.app, "live");
        assert_eq!(p.stream, "cam1");
        assert_eq!(p.tc_url, "rtmp://server/live");
        assert_eq!(t.display_name(), "rtmp://server/live/cam1");

        let (t, p) = rtmp("rtmp://127.0.0.1:19350/app/inst/key-123?secret=x&y=1");
        assert_eq!(t.port, 19350);
        assert_eq!(p.app, "app/inst");
        assert_eq!(p.stream, "key-123?secret=x&y=1");
        assert_eq!(p.tc_url, "rtmp://127.0.0.1:19350/app/inst");
        assert_eq!(
            t.display_name(),
            "rtmp://127.0.0.1:19350/app/inst/key-123?****"
        );
        assert!(!t.display_name().contains("secret"));

        let (t, p) = rtmp("rtmp://[::1]:1936/live/x");
        assert_eq!((t.host.as_str(), t.port), ("::1", 1936));
        assert_eq!(p.tc_url, "rtmp://[::1]:1936/live");

        let (t, p) = rtmp("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop");
        assert_eq!(
            (p.app.as_str(), p.stream.as_str()),
            ("live2", "abcd-efgh-ijkl-mnop")
        );
        assert_eq!(t.display_name(), "rtmp://a.rtmp.youtube.com/live2/****");
        let (t, _) = rtmp("rtmp://live.twitch.tv/app/live_12345678_x");
        assert_eq!(t.display_name(), "rtmp://live.twitch.tv/app/****");
        let (t, _) = rtmp("rtmp://server/live/front-door");
        assert_eq!(t.display_name(), "rtmp://server/live/front-door");
    }

    #[test]
    fn tcp_form() {
        let t = PushTarget::parse("tcp://127.0.0.1:6666/cam1").unwrap();
        assert_eq!(
            t.protocol,
            Protocol::Flv {
                stream_name: "cam1".into()
            }
        );
        assert_eq!(t.port, 6666);
        assert_eq!(t.display_name(), "tcp://127.0.0.1:6666/cam1");
    }

    #[test]
    fn errors_say_what_to_write() {
        let e = |u: &str| PushTarget::parse(u).unwrap_err().to_string();
        assert!(
            e("server/live/x").contains("rtmp://host"),
            "{}",
            e("server/live/x")
        );
        assert!(e("http://x/y").contains("not supported"));
        let t = PushTarget::parse("rtmps://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop").unwrap();
        assert!(t.tls);
        assert_eq!(t.port, RTMPS_PORT);
        assert_eq!(t.display_name(), "rtmps://a.rtmp.youtube.com/live2/****");
        let Protocol::Rtmp(p) = &t.protocol else {
            panic!("not RTMP")
        };
        assert_eq!(p.tc_url, "rtmps://a.rtmp.youtube.com/live2");
        let t = PushTarget::parse("rtmps://127.0.0.1:19350/live/cam1").unwrap();
        assert_eq!(t.display_name(), "rtmps://127.0.0.1:19350/live/cam1");
        assert!(!PushTarget::parse("rtmp://x/live/y").unwrap().tls);
        assert!(e("tcps://x:1/y").contains("rtmps://"));
        assert!(e("rtmp://server").contains("stream name"));
        assert!(e("rtmp://server/live").contains("application and a stream name"));
        assert!(e("rtmp://server/live/").contains("application and a stream name"));
        assert!(e("rtmp://server:99999/live/x").contains("host[:port]"));
        assert!(e("rtmp://u:p@server/live/x").contains("passwords"));
        assert!(e("tcp://server/cam1").contains("needs a port"));
        assert!(e("tcp://server:0/cam1").contains("port 0"));
        assert!(e("tcp://:6666/cam1").contains("needs a host"));
        assert!(e("rtmp://server/live/a b").contains("spaces"));
    }
}
