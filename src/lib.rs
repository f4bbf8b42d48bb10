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
pub mod backoff;
pub mod clock;
pub mod config;
pub mod convert;
#[allow(unsafe_code)]
pub mod encode;
pub mod fanout;
pub mod flv;
pub mod h264;
pub mod h264_split;
pub mod health;
pub mod http;
pub mod logging;
pub mod media;
pub mod netif;
pub mod pipeline;
pub mod push;
pub mod reload;
pub mod reopen;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod slate;
pub mod source;
pub mod stats;
pub mod status;
#[allow(unsafe_code)]
pub mod sys;
pub mod systemd;
#[cfg(feature = "webrtc")]
pub mod webrtc;
