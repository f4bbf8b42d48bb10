//! The HTTP/1.1 face: the live page (`/`), fragmented MP4 for Media Source
//! Extensions (`/live.mp4`), `/api/status`, `/metrics` and `/snapshot.jpg`.
//!
//! [`request`] (parsing, auth, routing, responses), [`fmp4`] (the muxer) and
//! [`api`] (JSON and Prometheus text) are pure; [`server`] is the I/O around
//! them. The same users, Digest/Basic and connection limits as RTSP apply.
//! WebRTC playback (`POST /live/whep`, [`whep`]) needs the `webrtc` feature;
//! without it the route answers 501.

pub mod api;
pub mod face;
pub mod fmp4;
pub mod request;
pub mod server;
pub mod snapshot;
#[cfg(feature = "webrtc")]
pub mod whep;

pub use server::HttpServer;
