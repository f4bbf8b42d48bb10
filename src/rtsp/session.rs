//! The RTSP server's per-connection state machine, sans I/O.
//!
//! [`Connection::handle`] takes one parsed request and the facts it needs
//! from the rest of the server ([`Context`]: the time, the stream's
//! parameters, UDP ports, viewer admission) and returns the response plus an
//! [`Effect`] for the I/O layer to carry out (start or stop sending media).
//! It opens no sockets, reads no clocks and spawns nothing, so every path is
//! tested below without a network.
//!
//! A connection owns at most one session (one video track; VLC, ffmpeg,
//! GStreamer and retina all use one session per connection). The session ends
//! with TEARDOWN, with the connection, or after the session timeout without a
//! request or RTCP from the client.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::auth::{Authenticator, Outcome};
use super::headers::{self, Lower, TransportSpec};
use super::parse::Request;
use super::response::Response;
use super::sdp::{self, TRACK_CONTROL};
use crate::media::StreamInfo;
use crate::rtp;

pub const PUBLIC_METHODS: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// Server-wide settings the state machine reads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The stream's path, e.g. `/live` (no trailing slash).
    pub path: String,
    pub session_timeout: Duration,
    /// A connection without a session closes after this long idle.
    pub idle_timeout: Duration,
    /// Whether UDP transport is offered (a server port pair exists).
    pub udp: bool,
    /// Credentials every request but OPTIONS must carry; `None`: open.
    pub auth: Option<std::sync::Arc<Authenticator>>,
}

/// Viewer admission, implemented by the I/O layer (a global counter).
pub trait Admission {
    /// Reserves a viewer slot; false when the server is full.
    fn try_admit(&self) -> bool;
    /// Returns a slot reserved by `try_admit`.
    fn release(&self);
}

/// What a request may need from outside the connection.
pub struct Context<'a> {
    pub now: Instant,
    /// The stream's parameters; `None` until the encoder has produced them.
    pub stream: Option<&'a StreamInfo>,
    /// The server's address on this connection (SDP origin).
    pub local_ip: IpAddr,
    /// The server's RTP and RTCP ports for UDP transport.
    pub udp_server_ports: (u16, u16),
    /// The capture time of the newest frame (for RTP-Info `rtptime`).
    pub last_pts: Option<Duration>,
    pub admission: &'a dyn Admission,
    /// SDP origin session id and version.
    pub sdp_version: (u64, u64),
}

/// Where a session's media goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaTransport {
    /// Interleaved on this TCP connection.
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    /// UDP to the client's address (always the RTSP peer's IP).
    Udp { rtp: SocketAddr, rtcp: SocketAddr },
}

/// Everything the media sender needs to start (or resume) a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayParams {
    pub transport: MediaTransport,
    pub ssrc: u32,
    pub first_seq: u16,
    pub ts_offset: u32,
}

/// What the I/O layer must do after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Start sending media (PLAY). A keyframe should be requested.
    Play(PlayParams),
    /// Stop sending media but keep the session (PAUSE).
    Pause,
    /// Stop sending media and forget the session (TEARDOWN or timeout).
    Teardown,
    /// Close the connection after writing the response.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Playing,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    state: State,
    transport: MediaTransport,
    ssrc: u32,
    next_seq: u16,
    ts_offset: u32,
}

/// One client connection's RTSP state.
#[derive(Debug)]
pub struct Connection {
    settings: std::sync::Arc<Settings>,
    peer: SocketAddr,
    session: Option<Session>,
    last_activity: Instant,
    /// The user this connection authenticated as.
    user: Option<String>,
    /// Draws session ids, SSRCs and initial sequence numbers.
    rng: fastrand::Rng,
}

/// The request-URI's path without query, trailing slash or scheme/authority.
fn uri_path(uri: &str) -> Option<&str> {
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

/// What part of the server a URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Any,
    Stream,
    Track,
    Unknown,
}

impl Connection {
    pub fn new(settings: std::sync::Arc<Settings>, peer: SocketAddr, now: Instant) -> Self {
        Self {
            settings,
            peer,
            session: None,
            last_activity: now,
            user: None,
            rng: fastrand::Rng::new(),
        }
    }

    /// Draws session ids, SSRCs and sequence numbers from `rng` (seed it
    /// for deterministic tests) instead of a fresh random generator.
    pub fn with_rng(mut self, rng: fastrand::Rng) -> Self {
        self.rng = rng;
        self
    }

    /// The user this connection authenticated as, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.id.as_str())
    }

    pub fn is_playing(&self) -> bool {
        matches!(&self.session, Some(s) if s.state == State::Playing)
    }

    /// Marks client activity that keeps the session alive (a request, or
    /// RTCP from the client).
    pub fn touch(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// Like [`touch`](Self::touch), but never moves the activity time back.
    pub fn touch_at_least(&mut self, at: Instant) {
        self.last_activity = self.last_activity.max(at);
    }

    /// When the connection expires without further activity.
    pub fn deadline(&self) -> Instant {
        let timeout = if self.session.is_some() {
            self.settings.session_timeout
        } else {
            self.settings.idle_timeout
        };
        self.last_activity + timeout
    }

    /// Called at or after [`deadline`](Self::deadline): ends the session if
    /// it timed out. Returns the effect (`Teardown` if a session existed,
    /// then `Close`).
    pub fn expire(&mut self, now: Instant, admission: &dyn Admission) -> Option<Effect> {
        if now < self.deadline() {
            return None;
        }
        Some(if self.end_session(admission) {
            Effect::Teardown
        } else {
            Effect::Close
        })
    }

    /// The connection is going away: releases the session's viewer slot.
    /// Returns whether there was a session.
    pub fn close(&mut self, admission: &dyn Admission) -> bool {
        self.end_session(admission)
    }

    fn end_session(&mut self, admission: &dyn Admission) -> bool {
        if self.session.take().is_some() {
            admission.release();
            true
        } else {
            false
        }
    }

    /// The media sender reports where it stopped, so a later PLAY resumes
    /// the sequence numbers.
    pub fn set_next_seq(&mut self, seq: u16) {
        if let Some(s) = &mut self.session {
            s.next_seq = seq;
        }
    }

    fn target(&self, uri: &str) -> Target {
        let Some(path) = uri_path(uri) else {
            return Target::Unknown;
        };
        let base = self.settings.path.trim_end_matches('/');
        if path == "*" {
            Target::Any
        } else if path == base {
            Target::Stream
        } else if path.strip_prefix(base).and_then(|p| p.strip_prefix('/')) == Some(TRACK_CONTROL) {
            Target::Track
        } else {
            Target::Unknown
        }
    }

    /// Answers one request.
    pub fn handle(&mut self, req: &Request<'_>, ctx: &Context<'_>) -> (Response, Effect) {
        self.touch(ctx.now);
        if req.cseq().is_none() {
            return (
                Response::error(400, "the CSeq header is missing or not a number"),
                Effect::None,
            );
        }
        if let Some(req_opts) = req.header("Require") {
            return (
                Response::error(551, "no option extensions are supported")
                    .with_header("Unsupported", req_opts.to_string()),
                Effect::None,
            );
        }
        if req.method != "OPTIONS" {
            if let Some(denied) = self.authenticate(req, ctx.now) {
                return (denied, Effect::None);
            }
        }
        let target = self.target(req.uri);
        let needs_stream = |ok: &[Target]| !ok.contains(&target);
        match req.method {
            "OPTIONS" => (
                Response::ok().with_header("Public", PUBLIC_METHODS),
                Effect::None,
            ),
            "DESCRIBE" if needs_stream(&[Target::Stream]) => {
                (self.not_found(req.uri), Effect::None)
            }
            "DESCRIBE" => (self.describe(req, ctx), Effect::None),
            "SETUP" if needs_stream(&[Target::Stream, Target::Track]) => {
                (self.not_found(req.uri), Effect::None)
            }
            "SETUP" => self.setup(req, ctx),
            "PLAY" | "PAUSE" | "TEARDOWN" | "GET_PARAMETER" | "SET_PARAMETER"
                if needs_stream(&[Target::Stream, Target::Track, Target::Any]) =>
            {
                (self.not_found(req.uri), Effect::None)
            }
            "PLAY" => self.play(req, ctx),
            "PAUSE" => self.pause(req),
            "TEARDOWN" => self.teardown(req, ctx),
            "GET_PARAMETER" | "SET_PARAMETER" => (self.parameter(req), Effect::None),
            "ANNOUNCE" | "RECORD" | "REDIRECT" => (
                Response::error(
                    405,
                    format!("{} is not supported: this server only plays", req.method),
                )
                .with_header("Allow", PUBLIC_METHODS),
                Effect::None,
            ),
            other => (
                Response::error(501, format!("unknown method {other}")),
                Effect::None,
            ),
        }
    }

    /// Checks credentials when the server requires them; returns the 401
    /// to send if they fail.
    fn authenticate(&mut self, req: &Request<'_>, now: Instant) -> Option<Response> {
        let auth = self.settings.auth.as_ref()?;
        let stale = match auth.check(req.method, req.uri, req.header("Authorization"), now) {
            Outcome::Ok(user) => {
                self.user = Some(user);
                return None;
            }
            // A connection that authenticated keeps working on its nonce:
            // the password was right, only the nonce aged.
            Outcome::Stale(user) if self.user.as_deref() == Some(user.as_str()) => return None,
            Outcome::Stale(_) => true,
            Outcome::Denied(why) => {
                let mut r = Response::error(401, format!("authentication required: {why}"));
                for c in auth.challenges(now, false) {
                    r = r.with_header("WWW-Authenticate", c);
                }
                return Some(r);
            }
        };
        let mut r = Response::error(401, "the nonce expired; authenticate again");
        for c in auth.challenges(now, stale) {
            r = r.with_header("WWW-Authenticate", c);
        }
        Some(r)
    }

    fn not_found(&self, uri: &str) -> Response {
        Response::error(
            404,
            format!(
                "no stream at {uri}; the stream is at {}",
                self.settings.path
            ),
        )
    }

    /// Checks the Session header against this connection's session.
    /// `required`: a missing header is an error too.
    fn check_session(&self, req: &Request<'_>, required: bool) -> Result<(), Response> {
        match (req.header("Session"), &self.session) {
            (None, _) if !required => Ok(()),
            (None, _) => Err(Response::error(454, "the Session header is missing")),
            (Some(v), session) => {
                let id = headers::parse_session(v).map_err(|e| Response::error(454, e.0))?;
                match session {
                    Some(s) if s.id == id => Ok(()),
                    _ => Err(Response::error(
                        454,
                        format!("no session {id} on this connection"),
                    )),
                }
            }
        }
    }

    fn session_header(&self) -> String {
        let s = self
            .session
            .as_ref()
            .map(|s| s.id.as_str())
            .unwrap_or_default();
        format!("{s};timeout={}", self.settings.session_timeout.as_secs())
    }

    fn describe(&self, req: &Request<'_>, ctx: &Context<'_>) -> Response {
        let accepts_sdp = req.header("Accept").is_none_or(|a| {
            a.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                t.eq_ignore_ascii_case("application/sdp") || t == "*/*" || t == "application/*"
            })
        });
        if !accepts_sdp {
            return Response::error(406, "only application/sdp descriptions are available");
        }
        let Some(stream) = ctx.stream else {
            return Response::error(503, "the stream is starting; try again in a second")
                .with_header("Retry-After", "1");
        };
        let body = sdp::describe(stream, ctx.local_ip, ctx.sdp_version.0, ctx.sdp_version.1);
        let base = req
            .uri
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        Response::ok()
            .with_header("Content-Base", format!("{base}/"))
            .with_body("application/sdp", body)
    }

    fn choose_transport(&self, specs: &[TransportSpec]) -> Option<(MediaTransport, TransportSpec)> {
        specs.iter().find_map(|t| {
            if !t.rtp_avp || t.multicast || !t.play {
                return None;
            }
            let media = match t.lower {
                Lower::Tcp => {
                    let (a, b) = t.interleaved.unwrap_or((0, 1));
                    MediaTransport::Tcp {
                        rtp_channel: a,
                        rtcp_channel: b,
                    }
                }
                Lower::Udp if self.settings.udp => {
                    let (a, b) = t.client_port?;
                    MediaTransport::Udp {
                        rtp: SocketAddr::new(self.peer.ip(), a),
                        rtcp: SocketAddr::new(self.peer.ip(), b),
                    }
                }
                Lower::Udp => return None,
            };
            Some((media, *t))
        })
    }

    fn setup(&mut self, req: &Request<'_>, ctx: &Context<'_>) -> (Response, Effect) {
        if req.header("Session").is_some() {
            if let Err(r) = self.check_session(req, true) {
                return (r, Effect::None);
            }
            if self.is_playing() {
                return (
                    Response::error(455, "cannot change the transport while playing"),
                    Effect::None,
                );
            }
        } else if self.session.is_some() {
            return (
                Response::error(
                    459,
                    "this connection already has a session; send its Session header",
                ),
                Effect::None,
            );
        }
        let Some(value) = req.header("Transport") else {
            return (
                Response::error(400, "the Transport header is missing"),
                Effect::None,
            );
        };
        let specs = match headers::parse_transport(value) {
            Ok(s) => s,
            Err(e) => {
                return (
                    Response::error(400, format!("bad Transport header: {e}")),
                    Effect::None,
                );
            }
        };
        let Some((transport, spec)) = self.choose_transport(&specs) else {
            let udp = if self.settings.udp {
                " or RTP/AVP;unicast;client_port=a-b"
            } else {
                ""
            };
            return (
                Response::error(
                    461,
                    format!(
                        "supported transports: RTP/AVP/TCP;unicast;interleaved=a-b{udp}, mode=PLAY"
                    ),
                ),
                Effect::None,
            );
        };
        let reply_transport = match transport {
            MediaTransport::Tcp {
                rtp_channel,
                rtcp_channel,
            } => format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel}"),
            MediaTransport::Udp { .. } => {
                let (a, b) = spec.client_port.unwrap_or_default();
                let (sa, sb) = ctx.udp_server_ports;
                format!("RTP/AVP;unicast;client_port={a}-{b};server_port={sa}-{sb}")
            }
        };
        match &mut self.session {
            Some(s) => s.transport = transport,
            None => {
                if !ctx.admission.try_admit() {
                    return (
                        Response::error(453, "the server has as many viewers as it allows"),
                        Effect::None,
                    );
                }
                self.session = Some(Session {
                    id: format!("{:016X}", self.rng.u64(..)),
                    state: State::Ready,
                    transport,
                    ssrc: self.rng.u32(..),
                    next_seq: self.rng.u16(..),
                    ts_offset: self.rng.u32(..),
                });
            }
        }
        let ssrc = self.session.as_ref().map(|s| s.ssrc).unwrap_or_default();
        (
            Response::ok()
                .with_header(
                    "Transport",
                    format!("{reply_transport};ssrc={ssrc:08X};mode=\"PLAY\""),
                )
                .with_header("Session", self.session_header()),
            Effect::None,
        )
    }

    fn play(&mut self, req: &Request<'_>, ctx: &Context<'_>) -> (Response, Effect) {
        if let Err(r) = self.check_session(req, true) {
            return (r, Effect::None);
        }
        if let Some(range) = req.header("Range") {
            if let Err(e) = headers::parse_range(range) {
                return (Response::error(457, e.0), Effect::None);
            }
        }
        let session_header = self.session_header();
        let Some(s) = self.session.as_mut() else {
            return (Response::error(454, "no session"), Effect::None);
        };
        let was_playing = s.state == State::Playing;
        s.state = State::Playing;
        // The first frame sent is published after this point, so its
        // timestamp is at or after the newest one published so far.
        let pts = ctx.last_pts.unwrap_or_default();
        let rtptime = rtp::rtp_timestamp(pts, s.ts_offset);
        let base = req
            .uri
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        let base = base
            .strip_suffix(TRACK_CONTROL)
            .map(|b| b.trim_end_matches('/'))
            .unwrap_or(base);
        let response = Response::ok()
            .with_header("Session", session_header)
            .with_header("Range", "npt=0.000-")
            .with_header(
                "RTP-Info",
                format!(
                    "url={base}/{TRACK_CONTROL};seq={};rtptime={rtptime}",
                    s.next_seq
                ),
            );
        if was_playing {
            return (response, Effect::None);
        }
        let params = PlayParams {
            transport: s.transport,
            ssrc: s.ssrc,
            first_seq: s.next_seq,
            ts_offset: s.ts_offset,
        };
        (response, Effect::Play(params))
    }

    fn pause(&mut self, req: &Request<'_>) -> (Response, Effect) {
        if let Err(r) = self.check_session(req, true) {
            return (r, Effect::None);
        }
        let session_header = self.session_header();
        let Some(s) = self.session.as_mut() else {
            return (Response::error(454, "no session"), Effect::None);
        };
        let effect = if s.state == State::Playing {
            s.state = State::Ready;
            Effect::Pause
        } else {
            Effect::None
        };
        (
            Response::ok().with_header("Session", session_header),
            effect,
        )
    }

    fn teardown(&mut self, req: &Request<'_>, ctx: &Context<'_>) -> (Response, Effect) {
        if let Err(r) = self.check_session(req, true) {
            return (r, Effect::None);
        }
        self.end_session(ctx.admission);
        (Response::ok(), Effect::Teardown)
    }

    fn parameter(&mut self, req: &Request<'_>) -> Response {
        if let Err(r) = self.check_session(req, false) {
            return r;
        }
        let names = String::from_utf8_lossy(req.body);
        if !names.trim().is_empty() {
            return Response::error(
                451,
                format!("no parameters are available: {}", names.trim()),
            );
        }
        let r = Response::ok();
        match &self.session {
            Some(_) if req.header("Session").is_some() => {
                r.with_header("Session", self.session_header())
            }
            _ => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::ParameterSets;
    use crate::media::Fraction;
    use crate::rtsp::parse::{Limits, Message, Parsed, parse};
    use std::cell::Cell;
    use std::sync::Arc;

    struct Slots {
        free: Cell<usize>,
    }

    impl Admission for Slots {
        fn try_admit(&self) -> bool {
            if self.free.get() == 0 {
                return false;
            }
            self.free.set(self.free.get() - 1);
            true
        }
        fn release(&self) {
            self.free.set(self.free.get() + 1);
        }
    }

    struct Harness {
        conn: Connection,
        slots: Slots,
        info: StreamInfo,
        now: Instant,
        cseq: u32,
    }

    impl Harness {
        fn new(slots: usize) -> Self {
            let settings = Arc::new(Settings {
                path: "/live".into(),
                session_timeout: Duration::from_secs(60),
                idle_timeout: Duration::from_secs(30),
                udp: true,
                auth: None,
            });
            let now = Instant::now();
            Self {
                conn: Connection::new(settings, "10.0.0.9:40000".parse().unwrap(), now),
                slots: Slots {
                    free: Cell::new(slots),
                },
                info: StreamInfo {
                    width: 320,
                    height: 240,
                    fps: Fraction::new(30, 1),
                    bitrate_kbps: 500,
                    params: ParameterSets::new(vec![0x67, 0x42, 0xc0, 0x1e], vec![0x68, 0xce])
                        .unwrap(),
                },
                now,
                cseq: 0,
            }
        }

        fn req(&mut self, method: &str, uri: &str, headers: &[&str]) -> (Response, Effect) {
            self.cseq += 1;
            let mut text = format!("{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
            for h in headers {
                text.push_str(h);
                text.push_str("\r\n");
            }
            text.push_str("\r\n");
            let Ok(Parsed::Complete(Message::Request(req), _)) =
                parse(text.as_bytes(), &Limits::default())
            else {
                panic!("test request does not parse: {text}");
            };
            let ctx = Context {
                now: self.now,
                stream: Some(&self.info),
                local_ip: "10.0.0.1".parse().unwrap(),
                udp_server_ports: (6970, 6971),
                last_pts: Some(Duration::from_secs(1)),
                admission: &self.slots,
                sdp_version: (1, 1),
            };
            self.conn.handle(&req, &ctx)
        }

        fn session(&self) -> String {
            format!("Session: {}", self.conn.session_id().unwrap())
        }
    }

    const URL: &str = "rtsp://10.0.0.1:8554/live";
    const TRACK: &str = "rtsp://10.0.0.1:8554/live/trackID=0";

    #[test]
    fn tcp_play_flow_like_vlc() {
        let mut h = Harness::new(4);
        let (r, _) = h.req("OPTIONS", URL, &[]);
        assert_eq!(r.status, 200);
        assert!(r.header("Public").unwrap().contains("GET_PARAMETER"));
        let (r, _) = h.req("DESCRIBE", URL, &["Accept: application/sdp"]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Base"), Some("rtsp://10.0.0.1:8554/live/"));
        assert!(r.body().contains("a=rtpmap:96 H264/90000"));
        let (r, e) = h.req(
            "SETUP",
            TRACK,
            &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1"],
        );
        assert_eq!((r.status, e), (200, Effect::None));
        assert!(
            r.header("Transport")
                .unwrap()
                .starts_with("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=")
        );
        assert!(r.header("Session").unwrap().ends_with(";timeout=60"));
        assert_eq!(h.slots.free.get(), 3);
        let s = h.session();
        let (r, e) = h.req(
            "PLAY",
            "rtsp://10.0.0.1:8554/live/",
            &[&s, "Range: npt=0.000-"],
        );
        assert_eq!(r.status, 200);
        let info = r.header("RTP-Info").unwrap();
        assert!(
            info.starts_with("url=rtsp://10.0.0.1:8554/live/trackID=0;seq="),
            "{info}"
        );
        let Effect::Play(p) = e else { panic!("{e:?}") };
        assert_eq!(
            p.transport,
            MediaTransport::Tcp {
                rtp_channel: 0,
                rtcp_channel: 1
            }
        );
        assert!(info.contains(&format!(
            "seq={};rtptime={}",
            p.first_seq,
            rtp::rtp_timestamp(Duration::from_secs(1), p.ts_offset)
        )));
        // Playing again changes nothing; PAUSE stops, PLAY resumes.
        assert_eq!(h.req("PLAY", URL, &[&s]).1, Effect::None);
        assert_eq!(h.req("PAUSE", URL, &[&s]).1, Effect::Pause);
        h.conn.set_next_seq(p.first_seq.wrapping_add(100));
        let (_, e) = h.req("PLAY", TRACK, &[&s]);
        let Effect::Play(p2) = e else { panic!() };
        assert_eq!(p2.first_seq, p.first_seq.wrapping_add(100));
        assert_eq!(p2.ssrc, p.ssrc);
        let (r, e) = h.req("GET_PARAMETER", URL, &[&s]);
        assert_eq!((r.status, e), (200, Effect::None));
        let (r, e) = h.req("TEARDOWN", URL, &[&s]);
        assert_eq!((r.status, e), (200, Effect::Teardown));
        assert_eq!(h.slots.free.get(), 4);
        assert_eq!(h.req("PLAY", URL, &[&s]).0.status, 454);
    }

    #[test]
    fn udp_setup_sends_to_the_peer_only() {
        let mut h = Harness::new(1);
        let (r, _) = h.req(
            "SETUP",
            TRACK,
            &["Transport: RTP/AVP;unicast;destination=203.0.113.5;client_port=5000-5001"],
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Transport")
                .unwrap()
                .split(";ssrc")
                .next()
                .unwrap(),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971"
        );
        let s = h.session();
        let (_, e) = h.req("PLAY", URL, &[&s]);
        let Effect::Play(p) = e else { panic!() };
        assert_eq!(
            p.transport,
            MediaTransport::Udp {
                rtp: "10.0.0.9:5000".parse().unwrap(),
                rtcp: "10.0.0.9:5001".parse().unwrap()
            }
        );
    }

    #[test]
    fn errors() {
        let mut h = Harness::new(1);
        assert_eq!(h.req("DESCRIBE", "rtsp://h/nope", &[]).0.status, 404);
        assert_eq!(h.req("DESCRIBE", "rtsp://h/live/extra", &[]).0.status, 404);
        assert_eq!(h.req("DESCRIBE", URL, &["Accept: text/html"]).0.status, 406);
        assert_eq!(h.req("SETUP", TRACK, &[]).0.status, 400);
        assert_eq!(
            h.req("SETUP", TRACK, &["Transport: nonsense"]).0.status,
            400
        );
        assert_eq!(
            h.req("SETUP", TRACK, &["Transport: RTP/AVP;multicast"])
                .0
                .status,
            461
        );
        assert_eq!(
            h.req("SETUP", TRACK, &["Transport: RTP/AVP;unicast"])
                .0
                .status,
            461
        );
        assert_eq!(
            h.req(
                "SETUP",
                TRACK,
                &["Transport: RTP/AVP/TCP;interleaved=0-1;mode=record"]
            )
            .0
            .status,
            461
        );
        assert_eq!(
            h.req(
                "SETUP",
                TRACK,
                &["Session: 1234", "Transport: RTP/AVP/TCP;interleaved=0-1"]
            )
            .0
            .status,
            454
        );
        assert_eq!(h.req("PLAY", URL, &[]).0.status, 454);
        assert_eq!(h.req("PLAY", URL, &["Session: 99"]).0.status, 454);
        assert_eq!(h.req("TEARDOWN", URL, &["Session: 99"]).0.status, 454);
        assert_eq!(h.req("RECORD", URL, &[]).0.status, 405);
        assert_eq!(h.req("FLY", URL, &[]).0.status, 501);
        assert_eq!(h.req("OPTIONS", URL, &["Require: funky"]).0.status, 551);
        assert_eq!(h.req("GET_PARAMETER", URL, &[]).0.status, 200);
        // Connection-level keep-alives need no session.
        let (r, _) = h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP;interleaved=2-3"]);
        assert_eq!(r.status, 200);
        let s = h.session();
        assert_eq!(h.req("PLAY", URL, &[&s, "Range: bytes=0-"]).0.status, 457);
        assert_eq!(
            h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP"]).0.status,
            459
        );
        h.req("PLAY", URL, &[&s]);
        assert_eq!(
            h.req("SETUP", TRACK, &[&s, "Transport: RTP/AVP/TCP"])
                .0
                .status,
            455
        );
    }

    #[test]
    fn admission_limit_gives_453() {
        let mut h = Harness::new(0);
        let (r, _) = h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP;interleaved=0-1"]);
        assert_eq!(r.status, 453);
        assert!(h.conn.session_id().is_none());
    }

    #[test]
    fn describe_before_the_encoder_is_ready_is_503() {
        let mut h = Harness::new(1);
        let req_text = format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        let Ok(Parsed::Complete(Message::Request(req), _)) =
            parse(req_text.as_bytes(), &Limits::default())
        else {
            panic!()
        };
        let ctx = Context {
            now: h.now,
            stream: None,
            local_ip: "10.0.0.1".parse().unwrap(),
            udp_server_ports: (0, 0),
            last_pts: None,
            admission: &h.slots,
            sdp_version: (1, 1),
        };
        let (r, _) = h.conn.handle(&req, &ctx);
        assert_eq!(r.status, 503);
        assert_eq!(r.header("Retry-After"), Some("1"));
    }

    #[test]
    fn missing_cseq_is_400() {
        let mut h = Harness::new(1);
        let text = "OPTIONS * RTSP/1.0\r\n\r\n";
        let Ok(Parsed::Complete(Message::Request(req), _)) =
            parse(text.as_bytes(), &Limits::default())
        else {
            panic!()
        };
        let info = h.info.clone();
        let ctx = Context {
            now: h.now,
            stream: Some(&info),
            local_ip: "10.0.0.1".parse().unwrap(),
            udp_server_ports: (0, 0),
            last_pts: None,
            admission: &h.slots,
            sdp_version: (1, 1),
        };
        assert_eq!(h.conn.handle(&req, &ctx).0.status, 400);
    }

    #[test]
    fn session_times_out_and_releases_its_slot() {
        let mut h = Harness::new(1);
        h.req("SETUP", TRACK, &["Transport: RTP/AVP/TCP;interleaved=0-1"]);
        assert_eq!(h.slots.free.get(), 0);
        let t0 = h.now;
        assert_eq!(h.conn.deadline(), t0 + Duration::from_secs(60));
        assert_eq!(h.conn.expire(t0 + Duration::from_secs(59), &h.slots), None);
        h.conn.touch(t0 + Duration::from_secs(30));
        assert_eq!(h.conn.expire(t0 + Duration::from_secs(61), &h.slots), None);
        assert_eq!(
            h.conn.expire(t0 + Duration::from_secs(90), &h.slots),
            Some(Effect::Teardown)
        );
        assert_eq!(h.slots.free.get(), 1);
        assert_eq!(
            h.conn.expire(t0 + Duration::from_secs(200), &h.slots),
            Some(Effect::Close)
        );
    }

    #[test]
    fn idle_connections_without_a_session_use_the_idle_timeout() {
        let h = Harness::new(1);
        assert_eq!(h.conn.deadline(), h.now + Duration::from_secs(30));
    }

    #[test]
    fn credentials_are_required_except_for_options() {
        use crate::rtsp::auth::{Authenticator, User};
        let mut h = Harness::new(1);
        let auth = Authenticator::new(
            vec![User::parse("viewer:pw").unwrap()],
            true,
            [1; 32],
            h.now,
        );
        h.conn.settings = Arc::new(Settings {
            auth: Some(Arc::new(auth)),
            ..(*h.conn.settings).clone()
        });
        assert_eq!(h.req("OPTIONS", URL, &[]).0.status, 200);
        let (r, _) = h.req("DESCRIBE", URL, &[]);
        assert_eq!(r.status, 401);
        assert!(
            r.header("WWW-Authenticate")
                .unwrap()
                .starts_with("Digest realm=\"edgestream\"")
        );
        let (r, _) = h.req("DESCRIBE", URL, &["Authorization: Basic dmlld2VyOnd4"]);
        assert_eq!(r.status, 401, "wrong password");
        assert!(h.conn.user().is_none());
        // viewer:pw
        let good = "Authorization: Basic dmlld2VyOnB3";
        assert_eq!(h.req("DESCRIBE", URL, &[good]).0.status, 200);
        assert_eq!(h.conn.user(), Some("viewer"));
        let (r, _) = h.req(
            "SETUP",
            TRACK,
            &[good, "Transport: RTP/AVP/TCP;interleaved=0-1"],
        );
        assert_eq!(r.status, 200);
        // Every request needs them, also once authenticated.
        let s = h.session();
        assert_eq!(h.req("PLAY", URL, &[&s]).0.status, 401);
        assert!(matches!(h.req("PLAY", URL, &[&s, good]).1, Effect::Play(_)));
    }

    #[test]
    fn uri_paths() {
        assert_eq!(uri_path("rtsp://h:1/live/"), Some("/live"));
        assert_eq!(uri_path("rtsp://user@h/live?x=1"), Some("/live"));
        assert_eq!(uri_path("rtsp://h"), Some(""));
        assert_eq!(uri_path("/live/trackID=0"), Some("/live/trackID=0"));
        assert_eq!(uri_path("*"), Some("*"));
        assert_eq!(uri_path("http:x"), None);
    }
}
