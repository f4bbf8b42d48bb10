//! The RTSP server's per-connection state machine, sans I/O.
//!
//! [`SessionMachine::handle`] takes one parsed request and the facts it needs
//! from the rest of the server ([`Context`]: the time, the stream's
//! parameters, UDP ports, viewer admission) and returns the response plus an
//! [`Effect`] for the I/O layer to carry out (start or stop sending media).
//! It opens no sockets, reads no clocks and spawns nothing, so every path is
//! tested below without a network.
//!
//! A connection owns at most one session (VLC, ffmpeg, GStreamer and retina
//! all use one session per connection): the video track, and with
//! `audio = "silent"` the audio track too, each set up by its own SETUP and
//! played together by one aggregate PLAY. The session ends with TEARDOWN,
//! with the connection, or after the session timeout without a request or
//! RTCP from the client.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::audio;
use super::auth::{Authenticator, Outcome};
use super::headers;
use super::parse::Request;
use super::response::Response;
use super::sdp::{self, AUDIO_CONTROL, VIDEO_CONTROL};
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
    /// Whether the stream has the silent audio track (`audio = "silent"`).
    pub audio: bool,
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

/// The tracks of the stream, by their SDP control names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    /// The silent AAC track (`audio = "silent"`).
    Audio,
}

impl Track {
    const ALL: [Track; 2] = [Track::Video, Track::Audio];

    /// The control URL relative to Content-Base.
    pub fn control(self) -> &'static str {
        match self {
            Track::Video => VIDEO_CONTROL,
            Track::Audio => AUDIO_CONTROL,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The interleaved channels a SETUP without `interleaved=` gets.
    fn default_channels(self) -> (u8, u8) {
        match self {
            Track::Video => (0, 1),
            Track::Audio => (2, 3),
        }
    }

    /// The RTP timestamp of capture time `pts` on this track's clock.
    fn rtp_timestamp(self, pts: Duration, offset: u32) -> u32 {
        match self {
            Track::Video => rtp::rtp_timestamp(pts, offset),
            Track::Audio => audio::rtp_timestamp(pts, offset),
        }
    }
}

/// Everything the media sender needs to start (or resume) one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackParams {
    pub transport: MediaTransport,
    pub ssrc: u32,
    pub first_seq: u16,
    pub ts_offset: u32,
}

/// The tracks a PLAY starts: those the client set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayParams {
    pub video: Option<TrackParams>,
    pub audio: Option<TrackParams>,
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
    /// By [`Track::index`]; `first_seq` is the next sequence number.
    tracks: [Option<TrackParams>; 2],
}

impl Session {
    fn track(&self, t: Track) -> Option<&TrackParams> {
        self.tracks[t.index()].as_ref()
    }
}

/// One client connection's RTSP state.
#[derive(Debug)]
pub struct SessionMachine {
    settings: std::sync::Arc<Settings>,
    peer: SocketAddr,
    session: Option<Session>,
    last_activity: Instant,
    /// The user this connection authenticated as.
    user: Option<String>,
    /// Draws session ids, SSRCs and initial sequence numbers.
    rng: fastrand::Rng,
}

/// What part of the server a URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Any,
    Stream,
    Track(Track),
    Unknown,
}

impl SessionMachine {
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

    /// The media sender reports where `track` stopped, so a later PLAY
    /// resumes its sequence numbers.
    pub fn set_next_seq(&mut self, track: Track, seq: u16) {
        if let Some(t) = self
            .session
            .as_mut()
            .and_then(|s| s.tracks[track.index()].as_mut())
        {
            t.first_seq = seq;
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
        } else {
            let control = path.strip_prefix(base).and_then(|p| p.strip_prefix('/'));
            Track::ALL
                .into_iter()
                .filter(|t| *t == Track::Video || self.settings.audio)
                .find(|t| control == Some(t.control()))
                .map_or(Target::Unknown, Target::Track)
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
        let needs_stream = |ok: &[Target]| {
            !ok.iter().any(|t| match (t, target) {
                (Target::Track(_), Target::Track(_)) => true,
                _ => *t == target,
            })
        };
        match req.method {
            "OPTIONS" => (
                Response::ok().with_header("Public", PUBLIC_METHODS),
                Effect::None,
            ),
            "DESCRIBE" if needs_stream(&[Target::Stream]) => {
                (self.not_found(req.uri), Effect::None)
            }
            "DESCRIBE" => (self.describe(req, ctx), Effect::None),
            "SETUP" => match target {
                // The aggregate URL sets up the video (as one track did).
                Target::Stream => self.setup(req, ctx, Track::Video),
                Target::Track(t) => self.setup(req, ctx, t),
                Target::Any | Target::Unknown => (self.not_found(req.uri), Effect::None),
            },
            "PLAY" | "PAUSE" | "TEARDOWN" | "GET_PARAMETER" | "SET_PARAMETER"
                if needs_stream(&[Target::Stream, Target::Track(Track::Video), Target::Any]) =>
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
                let id =
                    headers::parse_session(v).map_err(|e| Response::error(454, e.to_string()))?;
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
        let body = sdp::describe(
            stream,
            self.settings.audio,
            ctx.local_ip,
            ctx.sdp_version.0,
            ctx.sdp_version.1,
        );
        let base = base_uri(req.uri);
        Response::ok()
            .with_header("Content-Base", format!("{base}/"))
            .with_body("application/sdp", body)
    }

    fn play(&mut self, req: &Request<'_>, ctx: &Context<'_>) -> (Response, Effect) {
        if let Err(r) = self.check_session(req, true) {
            return (r, Effect::None);
        }
        if let Some(range) = req.header("Range") {
            if let Err(e) = headers::parse_range(range) {
                return (Response::error(457, e.to_string()), Effect::None);
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
        let base = base_uri(req.uri);
        let base = Track::ALL
            .into_iter()
            .find_map(|t| base.strip_suffix(t.control()))
            .map(|b| b.trim_end_matches('/'))
            .unwrap_or(base);
        let rtp_info = Track::ALL
            .into_iter()
            .filter_map(|t| {
                let p = s.track(t)?;
                Some(format!(
                    "url={base}/{};seq={};rtptime={}",
                    t.control(),
                    p.first_seq,
                    t.rtp_timestamp(pts, p.ts_offset)
                ))
            })
            .collect::<Vec<_>>()
            .join(",");
        let response = Response::ok()
            .with_header("Session", session_header)
            .with_header("Range", "npt=0.000-")
            .with_header("RTP-Info", rtp_info);
        if was_playing {
            return (response, Effect::None);
        }
        let params = PlayParams {
            video: s.track(Track::Video).copied(),
            audio: s.track(Track::Audio).copied(),
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

mod setup;
mod uri;
use uri::{base_uri, uri_path};
#[cfg(test)]
pub(super) mod tests;
