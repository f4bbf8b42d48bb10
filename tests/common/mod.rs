//! Shared helpers for the end-to-end tests, one file per peer: the process
//! harness (the real binary on a free loopback port), ffmpeg/ffprobe, a raw
//! RTSP client, retina, nginx-rtmp, and the FLV receiver and checks.
//!
//! Every test crate compiles all of them (`mod common; use common::*;`) and
//! uses a part, so each module allows dead code for the crates that do not
//! use it.

#[allow(dead_code)]
pub mod chromium;
#[allow(dead_code)]
pub mod ffmpeg;
#[allow(dead_code)]
pub mod flv;
#[allow(dead_code)]
pub mod nginx;
#[allow(dead_code)]
pub mod process;
#[allow(dead_code)]
pub mod retina_client;
#[allow(dead_code)]
pub mod rtsp_client;
#[allow(dead_code)]
pub mod tls;

#[allow(unused_imports)]
pub use self::{ffmpeg::*, flv::*, nginx::*, process::*, retina_client::*, rtsp_client::*};
