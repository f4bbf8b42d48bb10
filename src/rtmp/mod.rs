//! RTMP publishing, sans I/O: AMF0, the handshake, the chunk stream and the
//! publish session state machine. The socket side is in [`crate::push`].

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod session;

pub use session::{Event, Phase, PublishParams, PublishSession, SessionError};
