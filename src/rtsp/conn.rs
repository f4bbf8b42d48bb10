//! One RTSP connection's policy, sans I/O, in the quinn-proto shape: bytes
//! and the time go in ([`Conn::handle_bytes`], [`Conn::handle_timeout`]),
//! bytes to send, effects and a deadline come out ([`Conn::poll_transmit`],
//! [`Conn::poll_event`], [`Conn::poll_timeout`]).
//!
//! It owns what the server used to decide around the session machine
//! ([`super::session::SessionMachine`]): the read buffer, the per-connection
//! token bucket (503 with `Retry-After: 1`), the deadline for finishing a
//! request (408), the idle and session timeouts, the answers to requests
//! the parser rejects (400, 413, 414, 505), and why the connection ended, as
//! a [`CloseReason`]. It reads no clock and opens no socket; randomness
//! comes from the [`fastrand::Rng`] it is given. `server.rs` only accepts,
//! reads, writes, starts media and sleeps until [`Conn::poll_timeout`].
//!
//! The driver's loop: write every [`poll_transmit`](Conn::poll_transmit),
//! carry out each [`poll_event`](Conn::poll_event), then call
//! [`handle_bytes`](Conn::handle_bytes) (with no bytes if none came) so the
//! connection goes on with what it has buffered: after a request with an
//! effect it waits for the driver, so a pipelined PLAY after a PAUSE sees
//! the sequence number the stopped sender reported.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::limits::{LimitSettings, TokenBucket};
use super::parse::{self, Limits, Message, ParseError, Parsed, Request};
use super::response::Response;
use super::session::{Admission, Context, Effect, PlayParams, SessionMachine, Settings, Track};
use crate::media::StreamInfo;
use crate::rtp;

/// How long a DESCRIBE waits for the encoder's first parameter sets.
pub const STREAM_WAIT: Duration = Duration::from_secs(2);

/// Facts about one connection that do not change while it lives.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    pub parse_limits: Limits,
    pub limits: LimitSettings,
    /// The server's address on this connection (SDP origin).
    pub local_ip: IpAddr,
    /// The server's RTP and RTCP ports for UDP transport (0 without UDP).
    pub udp_server_ports: (u16, u16),
    /// The SDP origin's session id (one per server).
    pub sdp_session_id: u64,
}

/// What the connection reads from, and reports to, the rest of the server.
pub trait Env: Send + Sync {
    /// The stream's parameters, once the encoder has produced them.
    fn stream_info(&self) -> Option<Arc<StreamInfo>>;
    /// The capture time of the newest frame (for RTP-Info `rtptime`).
    fn last_pts(&self) -> Option<Duration>;
    /// The server-wide viewer slots.
    fn admission(&self) -> &dyn Admission;
    /// Counts an answer the server's statistics track.
    fn count(&self, what: Count);
}

/// Answers counted in the server's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A request the parser rejected.
    BadRequest,
    /// A request over the rate, answered 503.
    RateLimited,
    /// A request answered 401.
    AuthFailure,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start (or resume) sending media.
    Play(PlayParams),
    /// Stop sending media, keep the session.
    Pause,
    /// Stop sending media; the session is gone (TEARDOWN or timeout).
    Teardown,
    /// A DESCRIBE came before the stream's parameters: wait up to this long
    /// for them, then call [`Conn::handle_bytes`] (it answers either way).
    AwaitStream(Duration),
    /// Close the connection once the transmits are written.
    Close(CloseReason),
}

/// Why the connection closed itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The parser rejected a request (answered 400, 413, 414 or 505).
    BadRequest(ParseError),
    /// No complete request within the handshake timeout (answered 408).
    NoRequestInTime(Duration),
    /// The session saw no request or RTCP within the session timeout.
    SessionTimeout(Duration),
    /// No session and no request within the idle timeout.
    Idle(Duration),
    /// The session machine asked to close.
    Closed,
    /// More buffered input than the limits allow (a driver that reads while
    /// events wait).
    BufferFull(usize),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequest(e) => write!(f, "bad request: {e}"),
            Self::NoRequestInTime(d) => {
                write!(f, "no complete request within {} s", d.as_secs())
            }
            Self::SessionTimeout(d) => write!(
                f,
                "session timed out ({} s without a request or RTCP)",
                d.as_secs()
            ),
            Self::Idle(d) => write!(f, "idle for {} s without a session", d.as_secs()),
            Self::Closed => f.write_str("closed after an error"),
            Self::BufferFull(n) => write!(f, "more than {n} bytes of unprocessed input"),
        }
    }
}

impl std::error::Error for CloseReason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadRequest(e) => Some(e),
            _ => None,
        }
    }
}

/// One RTSP connection: buffer, limits, deadlines and the session machine.
pub struct Conn {
    session: SessionMachine,
    env: Arc<dyn Env>,
    config: ConnConfig,
    buf: Vec<u8>,
    bucket: TokenBucket,
    /// When the client started a request it has not finished (or connected
    /// without sending one yet).
    pending_since: Option<Instant>,
    /// The request at the head of the buffer passed the rate limit and is
    /// waiting for the stream's parameters.
    awaiting_stream: bool,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    closed: bool,
    session_timeout: Duration,
}

impl Conn {
    pub fn new(
        settings: Arc<Settings>,
        config: ConnConfig,
        env: Arc<dyn Env>,
        peer: SocketAddr,
        now: Instant,
        rng: fastrand::Rng,
    ) -> Self {
        Self {
            session_timeout: settings.session_timeout,
            session: SessionMachine::new(settings, peer, now).with_rng(rng),
            bucket: TokenBucket::new(config.limits.max_requests_per_second, now),
            env,
            config,
            buf: Vec::new(),
            pending_since: Some(now),
            awaiting_stream: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.session.peer()
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session.session_id()
    }

    /// Most bytes held unprocessed: one request at its limits or one
    /// interleaved frame, plus a read's worth.
    fn capacity(&self) -> usize {
        let pl = self.config.parse_limits;
        pl.max_header_bytes + pl.max_body_bytes + 64 * 1024
    }

    /// Bytes from the peer (possibly none: go on with what is buffered).
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        if self.closed {
            return;
        }
        if self.buf.is_empty() && !data.is_empty() {
            self.pending_since.get_or_insert(now);
        }
        self.buf.extend_from_slice(data);
        self.process(now);
        if !self.closed && self.events.is_empty() && self.buf.len() > self.capacity() {
            self.close(CloseReason::BufferFull(self.capacity()));
        }
    }

    /// RTCP from the peer's UDP port at `at` (keeps the session alive).
    pub fn handle_activity(&mut self, at: Instant) {
        self.session.touch_at_least(at);
    }

    /// Does what is due at `now`: the 408, the session and idle timeouts.
    /// May be called at any time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(since) = self.pending_since {
            let limit = self.config.limits.handshake_timeout;
            if now >= since + limit {
                self.answer(&Response::error(408, "no complete request in time"), None);
                self.close(CloseReason::NoRequestInTime(limit));
                return;
            }
        }
        match self.session.expire(now, self.env.admission()) {
            Some(Effect::Teardown) => {
                self.events.push_back(Event::Teardown);
                self.close(CloseReason::SessionTimeout(self.session_timeout));
            }
            Some(_) => self.close(CloseReason::Idle(self.config.limits.idle_timeout)),
            None => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due (`None`
    /// once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let d = self.session.deadline();
        Some(match self.pending_since {
            Some(since) => d.min(since + self.config.limits.handshake_timeout),
            None => d,
        })
    }

    /// Whether the connection has closed itself (a [`Event::Close`] is
    /// queued or was taken).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next bytes to write to the peer, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next thing the driver must do (after writing the transmits).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The media sender stopped `track` at `seq`; a later PLAY resumes there.
    pub fn set_next_seq(&mut self, track: Track, seq: u16) {
        self.session.set_next_seq(track, seq);
    }

    /// The connection is going away: gives back the session's viewer slot.
    /// Returns whether there was a session.
    pub fn close_session(&mut self) -> bool {
        self.session.close(self.env.admission())
    }

    fn close(&mut self, reason: CloseReason) {
        self.closed = true;
        self.events.push_back(Event::Close(reason));
    }

    fn answer(&mut self, response: &Response, cseq: Option<u32>) {
        let mut bytes = Vec::new();
        response.write_to(cseq, &mut bytes);
        self.transmits.push_back(bytes);
    }

    /// Handles the complete messages in the buffer, stopping after one with
    /// an effect (the driver resumes with `handle_bytes`).
    fn process(&mut self, now: Instant) {
        if !self.events.is_empty() {
            return;
        }
        // The buffer is taken out while requests borrow it.
        let buf = std::mem::take(&mut self.buf);
        let limits = self.config.parse_limits;
        let mut consumed = 0;
        while !self.closed && self.events.is_empty() {
            match parse::parse(&buf[consumed..], &limits) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Complete(Message::Interleaved { channel, payload }, n)) => {
                    consumed += n;
                    if channel % 2 == 1 && rtp::inspect_rtcp(payload).valid {
                        self.session.touch(now);
                    }
                }
                Ok(Parsed::Complete(Message::Request(req), n)) => {
                    if self.request(now, &req) {
                        consumed += n;
                    } else {
                        break;
                    }
                }
                Err(e) => {
                    self.bad_request(e);
                    break;
                }
            }
        }
        self.buf = buf;
        self.buf.drain(..consumed);
        if consumed > 0 {
            // A request finished: the clock restarts only if another began.
            self.pending_since = (!self.buf.is_empty()).then_some(now);
        }
    }

    fn bad_request(&mut self, e: ParseError) {
        self.env.count(Count::BadRequest);
        let (status, _) = e.status();
        log::warn!(
            "rtsp: bad request from {}: {e}; answering {status} and closing",
            self.peer()
        );
        self.answer(&Response::error(status, e.to_string()), None);
        self.close(CloseReason::BadRequest(e));
    }

    /// Answers one request; false if it must wait for the stream's
    /// parameters first (it stays in the buffer).
    fn request(&mut self, now: Instant, req: &Request<'_>) -> bool {
        let peer = self.peer();
        let (response, effect) = if !self.awaiting_stream && !self.bucket.take(now) {
            self.env.count(Count::RateLimited);
            let limit = self.config.limits.max_requests_per_second;
            (
                Response::error(
                    503,
                    format!("more than {limit} requests per second on this connection"),
                )
                .with_header("Retry-After", "1"),
                Effect::None,
            )
        } else {
            if !self.awaiting_stream && req.method == "DESCRIBE" && self.env.stream_info().is_none()
            {
                self.awaiting_stream = true;
                self.events.push_back(Event::AwaitStream(STREAM_WAIT));
                return false;
            }
            self.awaiting_stream = false;
            let info = self.env.stream_info();
            let env = self.env.clone();
            self.session.handle(
                req,
                &Context {
                    now,
                    stream: info.as_deref(),
                    local_ip: self.config.local_ip,
                    udp_server_ports: self.config.udp_server_ports,
                    last_pts: env.last_pts(),
                    admission: env.admission(),
                    sdp_version: (self.config.sdp_session_id, sdp_version(info.as_deref())),
                },
            )
        };
        log::debug!(
            "rtsp: {peer} {} {} -> {}",
            req.method,
            req.uri,
            response.status
        );
        if response.status == 401 {
            self.env.count(Count::AuthFailure);
        }
        self.log(req, &response);
        self.answer(&response, req.cseq());
        match effect {
            Effect::None => {}
            Effect::Play(params) => self.events.push_back(Event::Play(params)),
            Effect::Pause => self.events.push_back(Event::Pause),
            Effect::Teardown => self.events.push_back(Event::Teardown),
            Effect::Close => self.close(CloseReason::Closed),
        }
        true
    }

    /// Logs a refused request (a first 401 challenge only at debug level:
    /// it is the normal first step of authenticating).
    fn log(&self, req: &Request<'_>, response: &Response) {
        if response.is_success() {
            return;
        }
        let quiet = response.status == 401 && req.header("Authorization").is_none();
        let line = format!(
            "rtsp: {} {} {}: {} {} ({})",
            self.peer(),
            req.method,
            req.uri,
            response.status,
            response.reason,
            response.body().trim_end()
        );
        if quiet {
            log::debug!("{line}");
        } else {
            log::info!("{line}");
        }
    }
}

/// The SDP version: changes whenever the parameter sets do (FNV-1a over SPS
/// and PPS).
fn sdp_version(info: Option<&StreamInfo>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    if let Some(info) = info {
        for b in info.params.sps.iter().chain(&info.params.pps) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h >> 1
}

#[cfg(test)]
mod tests;
