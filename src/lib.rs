//! edgestream: a V4L2 camera (or a test pattern) to live H.264 over RTSP,
//! FLV and RTMP, in one process.
//!
//! The data path: a [`source`] hands frames (borrowed from its buffers) to the
//! [`pipeline`], which encodes them once with libx264 ([`encode`]) and
//! publishes each [`media::EncodedFrame`] to the [`fanout`]; every sink (RTSP
//! viewers in [`rtsp`], push targets in [`push`] using [`flv`] and [`rtmp`])
//! reads the same shared frames from its own bounded queue. Protocol code (parsers, packetizers, session state) is pure and
//! knows no sockets or clocks; the I/O around it runs on smol.
//!
//! `unsafe` is denied except in the three fenced modules: [`sys`] (a few
//! libc calls), [`encode`] (libx264) and `source::v4l2::sys` (the V4L2 ioctls).

#![deny(unsafe_code)]

pub mod app;
pub(crate) mod backoff;
pub(crate) mod clock;
pub mod config;
pub mod convert;
#[allow(unsafe_code)]
pub(crate) mod encode;
pub(crate) mod fanout;
pub mod flv;
pub mod h264;
pub(crate) mod h264_split;
pub(crate) mod health;
pub(crate) mod http;
pub mod logging;
pub mod media;
pub(crate) mod netif;
pub(crate) mod pipeline;
pub(crate) mod push;
pub(crate) mod reload;
pub(crate) mod reopen;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub(crate) mod slate;
pub mod source;
pub(crate) mod stats;
pub(crate) mod status;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub(crate) mod systemd;
#[cfg(feature = "webrtc")]
pub(crate) mod webrtc;
