//! WebRTC playback over WHEP (draft-ietf-wish-whep), behind the `webrtc`
//! cargo feature: the HTTP face takes the SDP offer at `POST /live/whep`
//! and answers with one [`peer::Peer`] per viewer; all peers share one
//! UDP port (ICE-lite, host candidates only).
//!
//! [`peer`] is sans-IO (str0m's `Rtc` and ours around it); [`server`] is
//! the smol shell: the UDP sockets, the timers and one fan-out sink per
//! connected peer.

pub(crate) mod crypto;
pub mod framing;
pub mod peer;
pub mod server;

pub use server::Webrtc;

use std::fmt;

/// Why an offer cannot be answered.
#[derive(Debug)]
pub enum WhepError {
    /// The body is not an SDP offer.
    Sdp(str0m::error::SdpError),
    /// str0m refused the offer.
    Offer(str0m::RtcError),
    /// A host candidate could not be made from a local address.
    Candidate(str0m::error::IceError),
    /// The offer has no video.
    NoVideo,
    /// The offer's video cannot take H.264 with packetization-mode 1.
    NoH264,
    /// `max-viewers` WebRTC peers are playing already.
    Full(usize),
}

impl fmt::Display for WhepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sdp(_) => f.write_str("the body is not an SDP offer"),
            Self::Offer(_) => f.write_str("the SDP offer cannot be answered"),
            Self::Candidate(_) => f.write_str("no ICE candidate for a local address"),
            Self::NoVideo => f.write_str("the offer has no video to receive"),
            Self::NoH264 => f.write_str(
                "the offer's video takes no H.264 Constrained Baseline with packetization-mode=1",
            ),
            Self::Full(n) => write!(f, "{n} WebRTC viewers are playing already (max-viewers)"),
        }
    }
}

impl std::error::Error for WhepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sdp(e) => Some(e),
            Self::Offer(e) => Some(e),
            Self::Candidate(e) => Some(e),
            _ => None,
        }
    }
}

impl WhepError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Full(_) => 503,
            Self::Candidate(_) => 500,
            _ => 400,
        }
    }
}
