//! SETUP: choosing a track's transport from the client's Transport header
//! and adding the track to the connection's session.

use std::net::SocketAddr;

use super::{Context, Effect, MediaTransport, Session, SessionMachine, State, Track, TrackParams};
use crate::rtsp::headers::{self, Lower, TransportSpec};
use crate::rtsp::parse::Request;
use crate::rtsp::response::Response;

impl SessionMachine {
    fn choose_transport(
        &self,
        specs: &[TransportSpec],
        track: Track,
    ) -> Option<(MediaTransport, TransportSpec)> {
        specs.iter().find_map(|t| {
            if !t.rtp_avp || t.multicast || !t.play {
                return None;
            }
            let media = match t.lower {
                Lower::Tcp => {
                    let (a, b) = t.interleaved.unwrap_or(track.default_channels());
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

    pub(super) fn setup(
        &mut self,
        req: &Request<'_>,
        ctx: &Context<'_>,
        track: Track,
    ) -> (Response, Effect) {
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
        let Some((transport, spec)) = self.choose_transport(&specs, track) else {
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
        if let Some(taken) = self.channel_clash(track, transport) {
            return (Response::error(461, taken), Effect::None);
        }
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
        if self.session.is_none() {
            if !ctx.admission.try_admit() {
                return (
                    Response::error(453, "the server has as many viewers as it allows"),
                    Effect::None,
                );
            }
            self.session = Some(Session {
                id: format!("{:016X}", self.rng.u64(..)),
                state: State::Ready,
                tracks: [None; 2],
            });
        }
        let rng = &mut self.rng;
        let Some(session) = self.session.as_mut() else {
            return (Response::error(454, "no session"), Effect::None);
        };
        let params = session.tracks[track.index()].get_or_insert_with(|| TrackParams {
            transport,
            ssrc: rng.u32(..),
            first_seq: rng.u16(..),
            ts_offset: rng.u32(..),
        });
        params.transport = transport;
        let ssrc = params.ssrc;
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

    /// Why `transport` cannot carry `track`: interleaved channels the
    /// session's other track already uses.
    fn channel_clash(&self, track: Track, transport: MediaTransport) -> Option<String> {
        let MediaTransport::Tcp {
            rtp_channel,
            rtcp_channel,
        } = transport
        else {
            return None;
        };
        let session = self.session.as_ref()?;
        let taken = Track::ALL
            .into_iter()
            .filter(|t| *t != track)
            .filter_map(|t| session.track(t))
            .any(|other| match other.transport {
                MediaTransport::Tcp {
                    rtp_channel: a,
                    rtcp_channel: b,
                } => [a, b].contains(&rtp_channel) || [a, b].contains(&rtcp_channel),
                MediaTransport::Udp { .. } => false,
            });
        taken.then(|| {
            format!(
                "interleaved channels {rtp_channel}-{rtcp_channel} are taken by the other track"
            )
        })
    }
}
