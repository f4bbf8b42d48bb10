//! One publisher interface with raw FLV and RTMP behind it, sans I/O: the
//! push adapter feeds it the server's bytes and media, and writes out what
//! it returns, without knowing which protocol it speaks.

use crate::flv::{self, Metadata};
use crate::media::StreamInfo;
use crate::rtmp::{Event, Phase, PublishParams, PublishSession, SessionError, handshake};

/// A connection's protocol side.
pub trait Publisher: Send + Sync {
    /// Takes bytes from the server.
    fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError>;
    /// What happened, for the log.
    fn poll_event(&mut self) -> Option<Event>;
    /// Whether media may be sent now.
    fn is_publishing(&self) -> bool;
    /// What setup is waiting for, for error messages ("during the RTMP
    /// handshake").
    fn waiting_for(&self) -> &'static str;
    /// The name of the whole setup, for its deadline.
    fn setup_name(&self) -> &'static str;
    /// Sends `onMetaData`.
    fn send_metadata(&mut self, info: &StreamInfo) -> Result<(), SessionError>;
    /// Sends one FLV video tag body.
    fn send_video(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError>;
    /// Sends one FLV audio tag body.
    fn send_audio(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError>;
    /// Ends publishing politely (RTMP: FCUnpublish and deleteStream).
    fn close(&mut self);
    /// Bytes to write, in order.
    fn take_output(&mut self) -> Vec<u8>;
}

/// Raw FLV over TCP: a file header, then tags; the stream name goes into
/// onMetaData `streamName` (crtmpserver's inboundLiveFlv). A raw FLV server
/// has nothing to say: whatever it sends is ignored.
#[derive(Debug)]
pub struct FlvPublisher {
    stream_name: String,
    audio: bool,
    out: Vec<u8>,
}

impl FlvPublisher {
    /// `audio`: the header and metadata announce an audio track.
    pub fn new(stream_name: &str, audio: bool) -> Self {
        let header = if audio {
            flv::file_header_with_audio()
        } else {
            flv::file_header()
        };
        Self {
            stream_name: stream_name.to_string(),
            audio,
            out: header.to_vec(),
        }
    }
}

impl Publisher for FlvPublisher {
    fn handle_input(&mut self, _bytes: &[u8]) -> Result<(), SessionError> {
        Ok(())
    }
    fn poll_event(&mut self) -> Option<Event> {
        None
    }
    fn is_publishing(&self) -> bool {
        true
    }
    fn waiting_for(&self) -> &'static str {
        "sending the FLV header"
    }
    fn setup_name(&self) -> &'static str {
        "sending the FLV header"
    }
    fn send_metadata(&mut self, info: &StreamInfo) -> Result<(), SessionError> {
        let mut meta = Metadata::from_info(info, Some(&self.stream_name));
        meta.audio = self.audio;
        flv::write_tag(&mut self.out, flv::TAG_SCRIPT, 0, &meta.script_body(false));
        Ok(())
    }
    fn send_video(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError> {
        flv::write_tag(&mut self.out, flv::TAG_VIDEO, timestamp, body);
        Ok(())
    }
    fn send_audio(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError> {
        flv::write_tag(&mut self.out, flv::TAG_AUDIO, timestamp, body);
        Ok(())
    }
    fn close(&mut self) {}
    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// RTMP publish: [`PublishSession`] behind the interface.
#[derive(Debug)]
pub struct RtmpPublisher {
    session: PublishSession,
    audio: bool,
}

impl RtmpPublisher {
    /// `random` fills the handshake's C1; `audio`: the metadata announces
    /// an audio track.
    pub fn new(
        params: PublishParams,
        random: &[u8; handshake::PACKET_SIZE - 8],
        audio: bool,
    ) -> Self {
        Self {
            session: PublishSession::new(params, random),
            audio,
        }
    }
}

impl Publisher for RtmpPublisher {
    fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.session.handle_input(bytes)
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.session.poll_event()
    }
    fn is_publishing(&self) -> bool {
        self.session.phase() == Phase::Published
    }
    fn waiting_for(&self) -> &'static str {
        match self.session.phase() {
            Phase::Handshake => "during the RTMP handshake",
            Phase::Connecting => "after RTMP connect",
            _ => "before publishing started",
        }
    }
    fn setup_name(&self) -> &'static str {
        "RTMP handshake and publish"
    }
    fn send_metadata(&mut self, info: &StreamInfo) -> Result<(), SessionError> {
        let mut meta = Metadata::from_info(info, None);
        meta.audio = self.audio;
        self.session.send_metadata(&meta.script_body(true))
    }
    fn send_video(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError> {
        self.session.send_video(timestamp, body)
    }
    fn send_audio(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError> {
        self.session.send_audio(timestamp, body)
    }
    fn close(&mut self) {
        self.session.close()
    }
    fn take_output(&mut self) -> Vec<u8> {
        self.session.take_output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flv_publishes_at_once_and_rtmp_after_the_handshake() {
        let mut f = FlvPublisher::new("cam1", false);
        assert!(f.is_publishing());
        assert_eq!(f.take_output(), flv::file_header());
        f.send_video(5, &[0x17, 0, 0, 0, 0]).unwrap();
        let out = f.take_output();
        assert_eq!(out[0], flv::TAG_VIDEO);
        let params = PublishParams {
            app: "live".into(),
            tc_url: "rtmp://h/live".into(),
            stream: "cam1".into(),
        };
        let mut r = RtmpPublisher::new(params, &[7; handshake::PACKET_SIZE - 8], true);
        assert!(!r.is_publishing());
        assert_eq!(r.waiting_for(), "during the RTMP handshake");
        assert_eq!(r.take_output().len(), 1 + handshake::PACKET_SIZE);
        assert!(r.send_video(0, &[0x17]).is_err());
    }
}
