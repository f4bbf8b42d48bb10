//! An RTMP publish session, client side, as a state machine: bytes from the
//! server in ([`PublishSession::handle_input`]), bytes for the server out
//! ([`PublishSession::take_output`]), events about the session's progress
//! ([`PublishSession::poll_event`]). No sockets, threads or clocks.
//!
//! The sequence is the one ffmpeg and OBS send, which every server accepts:
//! handshake; Set Chunk Size 4096; `connect` (app, type, flashVer, tcUrl);
//! on its `_result`, Window Acknowledgement Size, `releaseStream`,
//! `FCPublish` and `createStream`; on that `_result`, `publish(name, live)`
//! on the new stream; `onStatus NetStream.Publish.Start` means publishing.
//! Then `@setDataFrame onMetaData` and the video. Closing sends
//! `FCUnpublish` and `deleteStream`.
//!
//! Along the way it answers pings, acknowledges received bytes when the
//! server set a window, and follows the server's chunk size.

use std::collections::VecDeque;
use std::fmt;

use super::amf0::{self, Amf0Error, Value};
use super::chunk::{ChunkError, ChunkReader, ChunkWriter, Limits, Message, msg_type};
use super::handshake::{self, Handshake, HandshakeError, Progress};

/// Chunk size we send with (ffmpeg uses 4096 too; more than 128 saves
/// headers on every video frame).
pub const OUT_CHUNK_SIZE: usize = 4096;
/// The acknowledgement window we ask the server to use.
pub const WINDOW_ACK_SIZE: u32 = 2_500_000;
/// flashVer of a live encoder, as OBS sends it (nginx-rtmp keeps 32 bytes of it).
pub const FLASH_VER: &str = "FMLE/3.0 (compatible; FMSc/1.0)";

/// Chunk stream ids, as ffmpeg assigns them.
mod csid {
    pub const CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const DATA: u32 = 4;
    pub const AUDIO: u32 = 5;
    pub const VIDEO: u32 = 6;
    pub const STREAM_COMMAND: u32 = 8;
}

/// User control event types (§7.1.7).
mod user_control {
    pub const STREAM_BEGIN: u16 = 0;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Where to publish: the parts of `rtmp://host[:port]/app[/instance]/stream[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishParams {
    /// `app` or `app/instance`.
    pub app: String,
    /// `rtmp://host[:port]/app`.
    pub tc_url: String,
    /// The stream name with its query string (stream keys often live there).
    pub stream: String,
}

/// What the session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Handshake,
    Connecting,
    CreatingStream,
    Publishing,
    Published,
    Closed,
}

/// What happened, for the adapter to act on or log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `connect` succeeded.
    Connected,
    /// `NetStream.Publish.Start`: send metadata and video now.
    PublishStarted,
    /// An `onStatus` that changes nothing (e.g. `NetStream.Publish.Idle`).
    Status { code: String, description: String },
}

/// Why the session failed.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionError {
    Handshake(HandshakeError),
    Chunk(ChunkError),
    Amf0 {
        what: &'static str,
        error: Amf0Error,
    },
    /// The server refused a step: `connect`, `createStream` or `publish`.
    Rejected {
        step: &'static str,
        code: String,
        description: String,
    },
    /// The server broke the protocol (e.g. a `createStream` result without
    /// a stream id) or asked us to close.
    Protocol(String),
    /// Media was offered before `NetStream.Publish.Start`.
    NotPublishing,
}

impl SessionError {
    /// Whether this says the stream name is taken (a previous connection of
    /// ours the server has not noticed is gone yet, or another publisher).
    pub fn is_already_publishing(&self) -> bool {
        matches!(self, Self::Rejected { code, description, .. }
            if code.contains("BadName") || description.to_ascii_lowercase().contains("already publishing"))
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handshake(e) => write!(f, "handshake: {e}"),
            Self::Chunk(e) => write!(f, "bad chunk stream from the server: {e}"),
            Self::Amf0 { what, error } => write!(f, "bad {what} from the server: {error}"),
            Self::Rejected {
                step,
                code,
                description,
            } => {
                write!(f, "{step} refused: {code}")?;
                if !description.is_empty() {
                    write!(f, " ({description})")?;
                }
                Ok(())
            }
            Self::Protocol(s) => f.write_str(s),
            Self::NotPublishing => f.write_str("media offered before publishing started"),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<ChunkError> for SessionError {
    fn from(e: ChunkError) -> Self {
        Self::Chunk(e)
    }
}

/// The client side of one RTMP publish connection.
#[derive(Debug)]
pub struct PublishSession {
    params: PublishParams,
    phase: Phase,
    handshake: Option<Handshake>,
    reader: ChunkReader,
    writer: ChunkWriter,
    out: Vec<u8>,
    events: VecDeque<Event>,
    next_txn: f64,
    connect_txn: f64,
    create_txn: f64,
    publish_txn: f64,
    stream_id: u32,
    bytes_in: u64,
    acked: u64,
    ack_window: Option<u32>,
}

impl PublishSession {
    /// Starts a session; C0+C1 are ready in [`PublishSession::take_output`].
    /// `random` fills C1 (the server echoes it).
    pub fn new(params: PublishParams, random: &[u8; handshake::PACKET_SIZE - 8]) -> Self {
        let (hs, c0c1) = Handshake::start(0, random);
        Self {
            params,
            phase: Phase::Handshake,
            handshake: Some(hs),
            reader: ChunkReader::new(Limits::default()),
            writer: ChunkWriter::default(),
            out: c0c1,
            events: VecDeque::new(),
            next_txn: 1.0,
            connect_txn: 0.0,
            create_txn: 0.0,
            publish_txn: 0.0,
            stream_id: 0,
            bytes_in: 0,
            acked: 0,
            ack_window: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes to send to the server, in order. Everything returned must be
    /// written before anything returned later.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether output is waiting.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn txn(&mut self) -> f64 {
        let t = self.next_txn;
        self.next_txn += 1.0;
        t
    }

    fn command(&mut self, csid: u32, stream_id: u32, values: &[Value]) {
        let body = amf0::encode_all(values);
        self.writer.write(
            csid,
            msg_type::COMMAND_AMF0,
            stream_id,
            0,
            &body,
            &mut self.out,
        );
    }

    fn control(&mut self, type_id: u8, payload: &[u8]) {
        self.writer
            .write(csid::CONTROL, type_id, 0, 0, payload, &mut self.out);
    }

    /// Takes bytes from the server and reacts to them.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        let mut bytes = bytes;
        let rest;
        if let Some(hs) = &mut self.handshake {
            match hs.handle_input(bytes).map_err(SessionError::Handshake)? {
                Progress::Pending => return Ok(()),
                Progress::Done { c2, rest: r } => {
                    self.handshake = None;
                    self.out.extend_from_slice(&c2);
                    self.start_connect();
                    rest = r;
                    bytes = &rest;
                }
            }
        }
        self.bytes_in += bytes.len() as u64;
        self.reader.push(bytes);
        while let Some(m) = self.reader.next_message()? {
            self.handle_message(m)?;
        }
        if let Some(window) = self.ack_window {
            if self.bytes_in - self.acked >= u64::from(window) {
                self.acked = self.bytes_in;
                // The sequence number is the total received, mod 2^32.
                let seq = (self.bytes_in as u32).to_be_bytes();
                self.control(msg_type::ACKNOWLEDGEMENT, &seq);
            }
        }
        Ok(())
    }

    fn start_connect(&mut self) {
        self.writer
            .set_chunk_size_message(OUT_CHUNK_SIZE, &mut self.out);
        self.connect_txn = self.txn();
        let p = &self.params;
        let object = Value::Object(vec![
            ("app".into(), Value::str(p.app.clone())),
            ("type".into(), Value::str("nonprivate")),
            ("flashVer".into(), Value::str(FLASH_VER)),
            ("tcUrl".into(), Value::str(p.tc_url.clone())),
        ]);
        let txn = self.connect_txn;
        self.command(
            csid::COMMAND,
            0,
            &[Value::str("connect"), Value::Number(txn), object],
        );
        self.phase = Phase::Connecting;
    }

    fn handle_message(&mut self, m: Message) -> Result<(), SessionError> {
        match m.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let size = be32(&m.payload).ok_or_else(|| short("Set Chunk Size"))?;
                self.reader.set_chunk_size(size & 0x7fff_ffff)?;
            }
            msg_type::ABORT => {
                let csid = be32(&m.payload).ok_or_else(|| short("Abort"))?;
                self.reader.abort(csid);
            }
            msg_type::WINDOW_ACK_SIZE => {
                let size = be32(&m.payload).ok_or_else(|| short("Window Acknowledgement Size"))?;
                self.ack_window = (size > 0).then_some(size);
            }
            msg_type::USER_CONTROL => {
                if m.payload.len() < 2 {
                    return Err(short("User Control"));
                }
                let event = u16::from_be_bytes([m.payload[0], m.payload[1]]);
                if event == user_control::PING_REQUEST {
                    let mut pong = user_control::PING_RESPONSE.to_be_bytes().to_vec();
                    pong.extend_from_slice(&m.payload[2..m.payload.len().min(6)]);
                    self.control(msg_type::USER_CONTROL, &pong);
                }
                // STREAM_BEGIN and the rest: nothing to do for a publisher.
                let _ = user_control::STREAM_BEGIN;
            }
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                // AMF3 commands start with a format byte, then AMF0.
                let body = if m.type_id == msg_type::COMMAND_AMF3 {
                    m.payload.get(1..).unwrap_or_default()
                } else {
                    &m.payload[..]
                };
                let values = amf0::decode_all(body).map_err(|error| SessionError::Amf0 {
                    what: "command",
                    error,
                })?;
                self.handle_command(values)?;
            }
            // Acknowledgements, bandwidth hints, data and media: nothing a
            // publisher must act on.
            _ => {}
        }
        Ok(())
    }

    fn handle_command(&mut self, values: Vec<Value>) -> Result<(), SessionError> {
        let name = values.first().and_then(Value::as_str).unwrap_or_default();
        let txn = values.get(1).and_then(Value::as_f64).unwrap_or(0.0);
        // The information object: the 4th value of _result/_error/onStatus
        // (after the transaction id and a null), or, from servers that leave
        // the null out, the first object with a code after the name.
        let info = values
            .get(3)
            .filter(|v| v.get_str("code").is_some())
            .or_else(|| values.iter().skip(1).find(|v| v.get_str("code").is_some()))
            .or(values.get(3));
        let code = info
            .and_then(|i| i.get_str("code"))
            .unwrap_or_default()
            .to_string();
        let description = info
            .and_then(|i| i.get_str("description"))
            .unwrap_or_default()
            .to_string();
        match name {
            "_result" if txn == self.connect_txn && self.phase == Phase::Connecting => {
                self.events.push_back(Event::Connected);
                self.control(msg_type::WINDOW_ACK_SIZE, &WINDOW_ACK_SIZE.to_be_bytes());
                let stream = Value::str(self.params.stream.clone());
                let t = self.txn();
                self.command(
                    csid::COMMAND,
                    0,
                    &[
                        Value::str("releaseStream"),
                        Value::Number(t),
                        Value::Null,
                        stream.clone(),
                    ],
                );
                let t = self.txn();
                self.command(
                    csid::COMMAND,
                    0,
                    &[
                        Value::str("FCPublish"),
                        Value::Number(t),
                        Value::Null,
                        stream,
                    ],
                );
                self.create_txn = self.txn();
                let t = self.create_txn;
                self.command(
                    csid::COMMAND,
                    0,
                    &[Value::str("createStream"), Value::Number(t), Value::Null],
                );
                self.phase = Phase::CreatingStream;
            }
            "_result" if txn == self.create_txn && self.phase == Phase::CreatingStream => {
                let id = values.get(3).and_then(Value::as_f64).ok_or_else(|| {
                    SessionError::Protocol(
                        "the server's createStream result has no stream id".into(),
                    )
                })?;
                if !(1.0..=f64::from(u32::MAX)).contains(&id) {
                    return Err(SessionError::Protocol(format!(
                        "the server's createStream result has stream id {id}"
                    )));
                }
                self.stream_id = id as u32;
                self.publish_txn = self.txn();
                let t = self.publish_txn;
                let sid = self.stream_id;
                self.command(
                    csid::STREAM_COMMAND,
                    sid,
                    &[
                        Value::str("publish"),
                        Value::Number(t),
                        Value::Null,
                        Value::str(self.params.stream.clone()),
                        Value::str("live"),
                    ],
                );
                self.phase = Phase::Publishing;
            }
            "_error" if txn == self.connect_txn && self.phase == Phase::Connecting => {
                return Err(rejected("connect", code, description));
            }
            "_error" if txn == self.create_txn && self.phase == Phase::CreatingStream => {
                return Err(rejected("createStream", code, description));
            }
            "_error" if txn == self.publish_txn && self.phase == Phase::Publishing => {
                return Err(rejected("publish", code, description));
            }
            // A few servers answer publish with a _result rather than (or
            // before) onStatus NetStream.Publish.Start.
            "_result"
                if txn == self.publish_txn
                    && self.phase == Phase::Publishing
                    && !is_refusal(info, &code) =>
            {
                self.phase = Phase::Published;
                self.events.push_back(Event::PublishStarted);
            }
            "onStatus" => {
                if is_publish_start(&code) && self.phase == Phase::Publishing {
                    self.phase = Phase::Published;
                    self.events.push_back(Event::PublishStarted);
                } else if is_refusal(info, &code) {
                    let step = match self.phase {
                        Phase::Connecting => "connect",
                        Phase::CreatingStream => "createStream",
                        _ => "publish",
                    };
                    return Err(rejected(step, code, description));
                } else {
                    self.events.push_back(Event::Status { code, description });
                }
            }
            "close" => {
                return Err(SessionError::Protocol(
                    "the server closed the session (close command)".into(),
                ));
            }
            // _result/_error for releaseStream and FCPublish (servers differ
            // in whether they answer), onFCPublish, onBWDone, _checkbw...
            _ => {}
        }
        Ok(())
    }

    /// Sends `@setDataFrame onMetaData` (the body from
    /// [`crate::flv::Metadata::script_body`] with `set_data_frame`).
    pub fn send_metadata(&mut self, body: &[u8]) -> Result<(), SessionError> {
        if self.phase != Phase::Published {
            return Err(SessionError::NotPublishing);
        }
        self.writer.write(
            csid::DATA,
            msg_type::DATA_AMF0,
            self.stream_id,
            0,
            body,
            &mut self.out,
        );
        Ok(())
    }

    /// Sends one video message (an FLV video tag body).
    pub fn send_video(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError> {
        if self.phase != Phase::Published {
            return Err(SessionError::NotPublishing);
        }
        self.writer.write(
            csid::VIDEO,
            msg_type::VIDEO,
            self.stream_id,
            timestamp,
            body,
            &mut self.out,
        );
        Ok(())
    }

    /// Sends one audio message (an FLV audio tag body).
    pub fn send_audio(&mut self, timestamp: u32, body: &[u8]) -> Result<(), SessionError> {
        if self.phase != Phase::Published {
            return Err(SessionError::NotPublishing);
        }
        self.writer.write(
            csid::AUDIO,
            msg_type::AUDIO,
            self.stream_id,
            timestamp,
            body,
            &mut self.out,
        );
        Ok(())
    }

    /// Ends publishing politely: `FCUnpublish` and `deleteStream` if a
    /// stream was created. Output follows; nothing is accepted after.
    pub fn close(&mut self) {
        if matches!(self.phase, Phase::Publishing | Phase::Published) {
            let t = self.txn();
            self.command(
                csid::COMMAND,
                0,
                &[
                    Value::str("FCUnpublish"),
                    Value::Number(t),
                    Value::Null,
                    Value::str(self.params.stream.clone()),
                ],
            );
            let t = self.txn();
            let sid = f64::from(self.stream_id);
            self.command(
                csid::COMMAND,
                0,
                &[
                    Value::str("deleteStream"),
                    Value::Number(t),
                    Value::Null,
                    Value::Number(sid),
                ],
            );
        }
        self.phase = Phase::Closed;
    }
}

/// `NetStream.Publish.Start` as nginx-rtmp, SRS, MediaMTX, Wowza and
/// YouTube send it, in any case, and the `...Started` spelling.
fn is_publish_start(code: &str) -> bool {
    code.to_ascii_lowercase()
        .starts_with("netstream.publish.start")
}

/// Whether an onStatus (or _result) says no: level `error`, or a code that
/// refuses (`NetStream.Publish.BadName` from nginx-rtmp and Wowza,
/// `...Denied`, `...Rejected`, `...Failed`, `...Unauthorized`,
/// `NetConnection.Connect.Closed`).
fn is_refusal(info: Option<&Value>, code: &str) -> bool {
    let level = info.and_then(|i| i.get_str("level")).unwrap_or_default();
    let code = code.to_ascii_lowercase();
    level.eq_ignore_ascii_case("error")
        || code.starts_with("netstream.publish.badname")
        || code == "netconnection.connect.closed"
        || [
            ".failed",
            ".rejected",
            ".denied",
            ".unauthorized",
            ".badconnection",
        ]
        .iter()
        .any(|s| code.ends_with(s))
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn short(what: &str) -> SessionError {
    SessionError::Protocol(format!(
        "the server sent a {what} message that is too short"
    ))
}

fn rejected(step: &'static str, code: String, description: String) -> SessionError {
    SessionError::Rejected {
        step,
        code: if code.is_empty() {
            "no code".into()
        } else {
            code
        },
        description,
    }
}

#[cfg(test)]
mod tests;
