//! Parsers and writers for the structured RTSP headers the server reads:
//! Transport (RFC 2326 §12.39), Session (§12.37) and Range (§12.29, §3.6).
//! Each parser returns an error that says what it expected.

use std::fmt;

/// The lower transport of an `RTP/AVP` transport spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lower {
    Udp,
    Tcp,
}

/// One transport-spec of a client's Transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportSpec {
    pub lower: Lower,
    pub multicast: bool,
    /// `interleaved=a-b` (TCP).
    pub interleaved: Option<(u8, u8)>,
    /// `client_port=a-b` (UDP). A single port means `a` and `a+1`.
    pub client_port: Option<(u16, u16)>,
    /// `mode=` says PLAY (or nothing, which means PLAY).
    pub play: bool,
    /// Whether the profile is `RTP/AVP` (as opposed to e.g. `RTP/SAVP`).
    pub rtp_avp: bool,
}

/// What was wrong with a header, named after its grammar (RFC 2326 §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// More than [`MAX_TRANSPORT_SPECS`] transport-specs.
    TooManyTransportSpecs,
    /// `Transport = "Transport" ":" 1#transport-spec`: none.
    EmptyTransport,
    /// `transport-protocol "/" profile ["/" lower-transport]`.
    TransportProtocol(String),
    /// `lower-transport = "TCP" | "UDP"`.
    LowerTransport(String),
    /// `client_port=0`.
    ClientPortZero,
    /// `port = port-number ["-" port-number]` (or `interleaved=` channels).
    NotARange { param: &'static str, value: String },
    /// A single port or channel with no room for the next one.
    NoSecondChannel { param: &'static str, value: String },
    /// `session-id = 1*( ALPHA | DIGIT | safe )`, at most 64 long.
    Session(String),
    /// `ranges-specifier` without `unit "="`.
    RangeNoUnit(String),
    /// A unit other than `npt`, `clock` or `smpte`.
    RangeUnit(String),
    /// `npt-range = ( npt-time "-" [ npt-time ] ) | ( "-" npt-time )`.
    RangeNoDash(String),
    /// `npt-time = "now" | npt-sec | npt-hhmmss`.
    NptTime(String),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyTransportSpecs => {
                write!(f, "more than {MAX_TRANSPORT_SPECS} transport-specs")
            }
            Self::EmptyTransport => f.write_str("empty Transport header"),
            Self::TransportProtocol(proto) => write!(
                f,
                "transport-protocol {proto:?} is not of the form RTP/AVP[/TCP|/UDP]"
            ),
            Self::LowerTransport(l) => write!(f, "unknown lower-transport {l:?}"),
            Self::ClientPortZero => f.write_str("client_port must not be 0"),
            Self::NotARange { param, value } => {
                write!(f, "{param}={value:?} is not a number or a range a-b")
            }
            Self::NoSecondChannel { param, value } => {
                write!(f, "{param}={value} leaves no room for a second channel")
            }
            Self::Session(value) => write!(f, "malformed Session header {value:?}"),
            Self::RangeNoUnit(value) => {
                write!(f, "Range {value:?} has no unit, expected npt=...")
            }
            Self::RangeUnit(unit) => write!(f, "Range unit {unit:?} is not npt, clock or smpte"),
            Self::RangeNoDash(spec) => write!(f, "Range npt={spec:?} has no '-'"),
            Self::NptTime(s) => write!(f, "npt time {s:?} is not seconds or h:mm:ss"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// The most transport-specs read from one Transport header.
pub const MAX_TRANSPORT_SPECS: usize = 8;

/// Parses a Transport header: a comma-separated list of preferences.
pub fn parse_transport(
    value: &str,
) -> Result<heapless::Vec<TransportSpec, MAX_TRANSPORT_SPECS>, HeaderError> {
    let mut out = heapless::Vec::new();
    for spec in value.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        out.push(parse_spec(spec)?)
            .map_err(|_| HeaderError::TooManyTransportSpecs)?;
    }
    if out.is_empty() {
        return Err(HeaderError::EmptyTransport);
    }
    Ok(out)
}

fn parse_spec(spec: &str) -> Result<TransportSpec, HeaderError> {
    let mut params = spec.split(';');
    let proto = params.next().unwrap_or_default().trim();
    let mut parts = proto.split('/');
    let (p, profile, lower) = (parts.next(), parts.next(), parts.next());
    if parts.next().is_some() || profile.is_none() {
        return Err(HeaderError::TransportProtocol(proto.into()));
    }
    let rtp_avp = p.unwrap_or_default().eq_ignore_ascii_case("RTP")
        && profile.unwrap_or_default().eq_ignore_ascii_case("AVP");
    let lower = match lower {
        None => Lower::Udp,
        Some(l) if l.eq_ignore_ascii_case("UDP") => Lower::Udp,
        Some(l) if l.eq_ignore_ascii_case("TCP") => Lower::Tcp,
        Some(l) => return Err(HeaderError::LowerTransport(l.into())),
    };
    let mut t = TransportSpec {
        lower,
        multicast: false,
        interleaved: None,
        client_port: None,
        play: true,
        rtp_avp,
    };
    for param in params {
        let param = param.trim();
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("unicast", None) => t.multicast = false,
            ("multicast", None) => t.multicast = true,
            ("interleaved", Some(v)) => t.interleaved = Some(range_of(v, "interleaved")?),
            ("client_port", Some(v)) => {
                let (a, b) = range_of::<u16>(v, "client_port")?;
                if a == 0 {
                    return Err(HeaderError::ClientPortZero);
                }
                t.client_port = Some((a, b));
            }
            ("mode", Some(v)) => t.play = v.eq_ignore_ascii_case("play"),
            // Parameters that do not change what we send (or that we
            // override: destination, for safety, is always the client).
            (
                "destination" | "source" | "ttl" | "layers" | "port" | "server_port" | "ssrc"
                | "append" | "",
                _,
            ) => {}
            _ => {} // RFC 2326: unknown parameters are ignored
        }
    }
    Ok(t)
}

/// `a` or `a-b`; a single value `a` means `a` and `a+1`.
fn range_of<T>(v: &str, param: &'static str) -> Result<(T, T), HeaderError>
where
    T: std::str::FromStr + Copy + TryFrom<u32>,
    u32: From<T>,
{
    let num = |s: &str| -> Result<T, HeaderError> {
        s.trim().parse::<T>().map_err(|_| HeaderError::NotARange {
            param,
            value: v.into(),
        })
    };
    match v.split_once('-') {
        Some((a, b)) => Ok((num(a)?, num(b)?)),
        None => {
            let a = num(v)?;
            let b = T::try_from(u32::from(a) + 1).map_err(|_| HeaderError::NoSecondChannel {
                param,
                value: v.into(),
            })?;
            Ok((a, b))
        }
    }
}

/// The Session header's identifier (what precedes `;timeout=`).
pub fn parse_session(value: &str) -> Result<&str, HeaderError> {
    let id = value.split(';').next().unwrap_or_default().trim();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HeaderError::Session(value.into()));
    }
    Ok(id)
}

/// Where a PLAY asks to start. A live stream always plays from now; the
/// range is checked for syntax only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeStart {
    Now,
    /// Seconds of normal play time.
    Npt(f64),
    /// Another unit (`clock=`, `smpte=`) we accept and ignore.
    Other,
}

/// Parses a Range header (`npt=0-`, `npt=now-`, `npt=12.5-20`, `clock=...`).
pub fn parse_range(value: &str) -> Result<RangeStart, HeaderError> {
    let value = value.split(';').next().unwrap_or_default().trim();
    let (unit, spec) = value
        .split_once('=')
        .ok_or_else(|| HeaderError::RangeNoUnit(value.into()))?;
    let unit = unit.trim();
    if unit.eq_ignore_ascii_case("clock") || unit.to_ascii_lowercase().starts_with("smpte") {
        return Ok(RangeStart::Other);
    }
    if !unit.eq_ignore_ascii_case("npt") {
        return Err(HeaderError::RangeUnit(unit.into()));
    }
    let (start, end) = spec
        .split_once('-')
        .ok_or_else(|| HeaderError::RangeNoDash(spec.into()))?;
    let start = start.trim();
    let end = end.trim();
    if !end.is_empty() {
        npt_time(end)?;
    }
    if start.is_empty() || start.eq_ignore_ascii_case("now") {
        return Ok(RangeStart::Now);
    }
    npt_time(start).map(RangeStart::Npt)
}

/// `npt-sec` (`12.5`) or `npt-hhmmss` (`1:02:03.5`).
fn npt_time(s: &str) -> Result<f64, HeaderError> {
    let e = || HeaderError::NptTime(s.into());
    let mut secs = 0.0;
    let parts: heapless::Vec<&str, 3> = s
        .split(':')
        .try_fold(heapless::Vec::new(), |mut v, p| {
            v.push(p).map(|_| v).map_err(|_| ())
        })
        .map_err(|_| e())?;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let ok = !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit() || (last && b == b'.'))
            && p.bytes().filter(|&b| b == b'.').count() <= 1;
        if !ok {
            return Err(e());
        }
        secs = secs * 60.0 + p.parse::<f64>().map_err(|_| e())?;
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_that_clients_send() {
        // VLC/live555 over TCP, ffmpeg over UDP, GStreamer's multi-choice list.
        let t = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1").unwrap();
        assert_eq!(t[0].lower, Lower::Tcp);
        assert_eq!(t[0].interleaved, Some((0, 1)));
        let t = parse_transport("RTP/AVP/UDP;unicast;client_port=17030-17031;mode=play").unwrap();
        assert_eq!(t[0].lower, Lower::Udp);
        assert_eq!(t[0].client_port, Some((17030, 17031)));
        assert!(t[0].play);
        let t = parse_transport(
            "RTP/AVP;multicast;mode=\"PLAY\",RTP/AVP;unicast;client_port=5000-5001;mode=\"PLAY\",RTP/AVP/TCP;unicast;interleaved=2-3",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert!(t[0].multicast);
        assert!(t[1].play && !t[1].multicast);
        assert_eq!(t[2].interleaved, Some((2, 3)));
        let t = parse_transport("RTP/AVP;unicast;client_port=5000;mode=record").unwrap();
        assert_eq!(t[0].client_port, Some((5000, 5001)));
        assert!(!t[0].play);
        let t = parse_transport("RTP/SAVP;unicast;client_port=5000-5001").unwrap();
        assert!(!t[0].rtp_avp);
    }

    #[test]
    fn bad_transports() {
        for v in [
            "",
            "RTP",
            "RTP/AVP/SCTP",
            "RTP/AVP/TCP;interleaved=x",
            "RTP/AVP/TCP;interleaved=255",
            "RTP/AVP;client_port=0",
            "RTP/AVP;client_port=70000-70001",
            "a/b/c/d",
        ] {
            assert!(parse_transport(v).is_err(), "{v:?}");
        }
        let many = ["RTP/AVP"; 9].join(",");
        assert!(parse_transport(&many).is_err());
    }

    #[test]
    fn session_ids() {
        assert_eq!(parse_session("ABC123;timeout=60").unwrap(), "ABC123");
        assert_eq!(parse_session(" 42 ").unwrap(), "42");
        assert!(parse_session("").is_err());
        assert!(parse_session(";timeout=5").is_err());
        assert!(parse_session(&"x".repeat(65)).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("npt=0.000-").unwrap(), RangeStart::Npt(0.0));
        assert_eq!(parse_range("npt=now-").unwrap(), RangeStart::Now);
        assert_eq!(parse_range("npt=-").unwrap(), RangeStart::Now);
        assert_eq!(
            parse_range("npt=1:02:03.5-2:00:00").unwrap(),
            RangeStart::Npt(3723.5)
        );
        assert_eq!(
            parse_range("clock=19961108T143720.25Z-").unwrap(),
            RangeStart::Other
        );
        for v in [
            "",
            "npt",
            "npt=abc-",
            "npt=1-x",
            "bytes=0-",
            "npt=1:2:3:4-",
            "npt=1..2-",
            "npt=1.5:2-",
        ] {
            assert!(parse_range(v).is_err(), "{v:?}");
        }
    }
}
