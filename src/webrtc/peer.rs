//! One WHEP viewer, sans-IO: str0m's [`Rtc`] (ICE-lite, DTLS, SRTP, the
//! H.264 packetizer, RTCP sender reports, NACK answers from its send
//! buffer) plus what edgestream adds: which payload type carries our
//! Constrained Baseline stream, capture times to RTP and wall-clock times,
//! and dropping to the next keyframe when the socket pushes back.
//!
//! Bytes and `now` go in, [`Effect`]s come out; the shell
//! ([`super::server`]) owns the socket and the fan-out subscription.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::WhepError;
use crate::media::EncodedFrame;

/// RTP packets kept per peer for NACK retransmission (at 30 fps and ~1
/// Mbit/s, about a second of video).
pub const SEND_BUFFER_PACKETS: usize = 400;
/// A peer that has not connected this long after its offer is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a peer asks its shell to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send `data` to `to` from the local address `from`, over UDP or
    /// on the ICE-TCP connection between them.
    Transmit {
        proto: Protocol,
        from: SocketAddr,
        to: SocketAddr,
        data: Vec<u8>,
    },
    /// ICE and DTLS are up: start sending frames (subscribe).
    Connected,
    /// The viewer lost a picture (PLI/FIR, or its packets were dropped
    /// here): ask the encoder for an IDR.
    KeyframeWanted,
    /// The peer is gone (ICE failed, DTLS closed, never connected, DELETE).
    Closed,
}

/// Counters for one peer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    pub frames_sent: u64,
    pub frames_skipped: u64,
    pub keyframe_requests: u64,
}

/// One viewer's WebRTC session.
pub struct Peer {
    rtc: Rtc,
    mid: Option<Mid>,
    pt: Option<Pt>,
    created: Instant,
    connected: bool,
    closed: bool,
    /// Frames are dropped until the next keyframe (a transmit failed).
    skip_to_keyframe: bool,
    pub stats: PeerStats,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("connected", &self.connected)
            .field("closed", &self.closed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Whether a payload type carries H.264 we can send: packetization-mode 1
/// (FU-A/STAP-A), and a profile our Constrained Baseline stream decodes as
/// (Constrained Baseline or Baseline).
fn fits(p: &str0m::format::PayloadParams) -> Option<u8> {
    let spec = p.spec();
    if spec.codec != Codec::H264 || spec.format.packetization_mode != Some(1) {
        return None;
    }
    match spec.format.profile_level_id.map(|id| id >> 8) {
        Some(0x42e0) => Some(0),
        Some(0x4200) => Some(1),
        _ => None,
    }
}

impl Peer {
    /// Answers an SDP offer: a peer offering host candidates on each of
    /// `candidates` (the UDP sockets' addresses), passive TCP ones on
    /// `tcp_candidates`, and DTLS with `cert`; and the SDP answer.
    pub fn answer(
        offer: &str,
        candidates: &[SocketAddr],
        tcp_candidates: &[SocketAddr],
        cert: &DtlsCert,
        now: Instant,
    ) -> Result<(Self, String), WhepError> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(WhepError::Sdp)?;
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(super::crypto::provider())
            .set_dtls_cert(cert.clone())
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .set_send_buffer_video(SEND_BUFFER_PACKETS)
            .set_stats_interval(None)
            .build(now);
        for &addr in candidates {
            let c = Candidate::host(addr, "udp").map_err(WhepError::Candidate)?;
            rtc.add_local_candidate(c);
        }
        // ICE-TCP (RFC 6544) where UDP is blocked: passive, the browser
        // connects.
        for &addr in tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(WhepError::Candidate)?;
            rtc.add_local_candidate(c);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(WhepError::Offer)?;
        let mut peer = Self {
            rtc,
            mid: None,
            pt: None,
            created: now,
            connected: false,
            closed: false,
            skip_to_keyframe: false,
            stats: PeerStats::default(),
        };
        // The answer names the video's mid (str0m announces media added by
        // an offer only later, as events).
        let answer = answer.to_sdp_string();
        let mut in_video = false;
        for line in answer.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                in_video = m.starts_with("video");
            } else if let (true, Some(mid)) = (in_video, line.strip_prefix("a=mid:")) {
                peer.set_video(Mid::from(mid.trim()));
                break;
            }
        }
        if peer.mid.is_none() {
            return Err(WhepError::NoVideo);
        }
        if peer.pt.is_none() {
            return Err(WhepError::NoH264);
        }
        Ok((peer, answer))
    }

    /// Whether a packet from `from` to `to` is this peer's.
    pub fn accepts(
        &self,
        now: Instant,
        proto: Protocol,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> bool {
        match input(now, proto, from, to, data) {
            Some(i) => !self.closed && self.rtc.accepts(&i),
            None => false,
        }
    }

    /// Hands in a packet (one [`accepts`](Self::accepts) said is ours).
    pub fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) {
        if let Some(i) = input(now, proto, from, to, data) {
            if let Err(e) = self.rtc.handle_input(i) {
                log::debug!("webrtc: {from}: {e}");
            }
        }
    }

    /// Moves time forward (the deadline from [`poll`](Self::poll) passed).
    pub fn timeout(&mut self, now: Instant) {
        if !self.connected && now.duration_since(self.created) > CONNECT_TIMEOUT {
            log::debug!("webrtc: peer did not connect within {CONNECT_TIMEOUT:?}");
            self.closed = true;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            log::debug!("webrtc: {e}");
        }
    }

    /// Sends a frame captured at `frame.pts` (CLOCK_MONOTONIC), which was
    /// `age` ago; `now` is the time of the call.
    pub fn send_frame(&mut self, frame: &EncodedFrame, age: Duration, now: Instant) {
        let (Some(mid), Some(pt), true) = (self.mid, self.pt, self.connected) else {
            return;
        };
        if self.skip_to_keyframe && !frame.keyframe {
            self.stats.frames_skipped += 1;
            return;
        }
        self.skip_to_keyframe = false;
        // RTP time is the capture time (CLOCK_MONOTONIC) at 90 kHz, so the
        // page can turn rtpTimestamp back into it (X-Edgestream-Clock-Ms).
        let ticks = frame.pts.as_micros() * 9 / 100;
        let rtp_time = MediaTime::new(ticks as u64, str0m::media::Frequency::NINETY_KHZ);
        let wallclock = now.checked_sub(age).unwrap_or(now);
        let Some(writer) = self.rtc.writer(mid) else {
            return;
        };
        match writer.write(pt, wallclock, rtp_time, frame.annex_b().to_vec()) {
            Ok(()) => self.stats.frames_sent += 1,
            Err(e) => log::debug!("webrtc: cannot send a frame: {e}"),
        }
    }

    /// The socket refused a packet of ours (its buffer is full): the viewer
    /// lost part of a picture, so skip to the next keyframe, and want one.
    pub fn congested(&mut self) -> bool {
        let first = !self.skip_to_keyframe;
        self.skip_to_keyframe = true;
        first
    }

    /// Ends the session (DELETE).
    pub fn close(&mut self) {
        self.closed = true;
        self.rtc.disconnect();
    }

    pub fn is_closed(&self) -> bool {
        self.closed || !self.rtc.is_alive()
    }

    /// Collects what the peer wants done into `out`; returns when it wants
    /// [`timeout`](Self::timeout) next.
    pub fn poll_into(&mut self, now: Instant, out: &mut Vec<Effect>) -> Instant {
        let fallback = now + Duration::from_millis(100);
        if self.is_closed() {
            return fallback;
        }
        loop {
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    log::debug!("webrtc: {e}");
                    self.closed = true;
                    out.push(Effect::Closed);
                    return fallback;
                }
            };
            match output {
                Output::Timeout(t) => {
                    if self.closed {
                        out.push(Effect::Closed);
                    }
                    return t.clamp(now, now + Duration::from_secs(1));
                }
                Output::Transmit(t) => out.push(Effect::Transmit {
                    proto: t.proto,
                    from: t.source,
                    to: t.destination,
                    data: t.contents.to_vec(),
                }),
                Output::Event(e) => self.event(e, out),
            }
        }
    }

    fn set_video(&mut self, mid: Mid) {
        self.mid = Some(mid);
        self.pt = self.rtc.writer(mid).and_then(|w| {
            let mut best: Option<(u8, Pt)> = None;
            for p in w.payload_params() {
                if let Some(rank) = fits(p) {
                    if best.is_none_or(|(r, _)| rank < r) {
                        best = Some((rank, p.pt()));
                    }
                }
            }
            best.map(|(_, pt)| pt)
        });
    }

    fn event(&mut self, e: Event, out: &mut Vec<Effect>) {
        match e {
            Event::MediaAdded(m) if m.kind == MediaKind::Video && self.mid.is_none() => {
                self.set_video(m.mid);
            }
            Event::Connected => {
                self.connected = true;
                out.push(Effect::Connected);
            }
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests += 1;
                out.push(Effect::KeyframeWanted);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                self.closed = true;
                out.push(Effect::Closed);
            }
            _ => {}
        }
    }
}

fn input(
    now: Instant,
    proto: Protocol,
    from: SocketAddr,
    to: SocketAddr,
    data: &[u8],
) -> Option<Input<'_>> {
    Some(Input::Receive(
        now,
        Receive {
            proto,
            source: from,
            destination: to,
            contents: data.try_into().ok()?,
        },
    ))
}

#[cfg(test)]
mod tests;
