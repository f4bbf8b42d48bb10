//! The RTSP 1.0 server (RFC 2326): a pure request parser, header parsers,
//! SDP, a per-connection session state machine, the connection's policy
//! around it ([`conn::Conn`]: buffer, limits, deadlines, error answers), and
//! the I/O around them ([`server`]).

pub(crate) mod audio;
pub mod auth;
pub mod conn;
pub mod headers;
pub mod limits;
pub mod parse;
pub mod response;
pub(crate) mod sdp;
pub(crate) mod sender;
pub(crate) mod server;
pub mod session;

pub use server::{RtspServer, ServerControl, ServerOptions, ServerStats};
