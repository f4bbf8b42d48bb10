//! The RTSP 1.0 server (RFC 2326): a pure request parser, header parsers,
//! SDP, a per-connection session state machine, and the I/O around them.

pub mod auth;
pub mod headers;
pub mod limits;
pub mod media;
pub mod parse;
pub mod response;
pub mod sdp;
pub mod server;
pub mod session;

pub use server::{RtspServer, ServerControl, ServerOptions, ServerStats};
