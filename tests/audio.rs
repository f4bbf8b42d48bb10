//! End-to-end `audio = "silent"`: the real binary pushing H.264 and a silent
//! AAC-LC track to nginx-rtmp (RTMP) and to a raw FLV receiver at once;
//! ffprobe sees both codecs, ffmpeg decodes both without an error, and the
//! audio timeline keeps up with the video's.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use edgestream::flv::{TAG_AUDIO, TAG_VIDEO, read};

/// The codec names ffprobe sees, in stream order.
fn codecs(file: &Path) -> Vec<String> {
    let out = tool("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let mut c: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    c.sort();
    c
}

/// Audio tags, and the largest distance (ms) between each video frame and
/// the audio sent before it.
fn audio_against_video(what: &str, bytes: &[u8]) -> (usize, u32) {
    let file = read::parse(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(file.has_audio, "{what}: the header has no audio flag");
    let (mut audio, mut last_audio, mut worst) = (0, None::<u32>, 0);
    for tag in &file.tags {
        match tag.tag_type {
            TAG_AUDIO => {
                if let Some(prev) = last_audio {
                    assert!(tag.timestamp >= prev, "{what}: audio goes back");
                }
                last_audio = Some(tag.timestamp);
                audio += 1;
            }
            TAG_VIDEO => {
                if let Some(a) = last_audio {
                    worst = worst.max(tag.timestamp.abs_diff(a));
                }
            }
            _ => {}
        }
    }
    (audio, worst)
}

#[test]
fn silent_aac_beside_the_video_over_rtmp_and_raw_flv() {
    let dir = temp_dir("push-audio");
    let rtmp_port = free_port();
    let flv_port = free_port();
    let mut nginx = Nginx::start(&dir.join("nginx"), rtmp_port);
    let rx = FlvReceiver::start(flv_port);
    let frames = 450;
    let es = Edgestream::start(&[
        "--size",
        "320x240",
        "--frames",
        &frames.to_string(),
        "--audio",
        "silent",
        "--push",
        &format!("rtmp://127.0.0.1:{rtmp_port}/live/cam1"),
        "--push",
        &format!("tcp://127.0.0.1:{flv_port}/cam1"),
    ]);
    let log = es.log.clone();
    let status = es.wait(Duration::from_secs(60));
    let log = log.lock().unwrap().join("\n");
    assert!(status.success(), "{status}\n{log}");
    nginx.stop();
    let recs = rx.kill();
    assert_eq!(recs.len(), 1, "{log}");
    for (what, bytes) in [
        ("nginx recording", nginx.recording("cam1")),
        ("raw FLV", recs[0].clone()),
    ] {
        let rec = check_flv(what, &bytes);
        let path = dir.join(format!("{}.flv", what.replace(' ', "-")));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(codecs(&path), vec!["aac", "h264"], "{what}");
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "{what}: decode errors:\n{errors}");
        let (audio, worst) = audio_against_video(what, &bytes);
        eprintln!(
            "{what}: {} video frames, {audio} audio tags, audio within {worst} ms of the video",
            rec.frames
        );
        assert!(
            rec.frames * 100 >= frames * 95,
            "{what}: {} frames",
            rec.frames
        );
        // 15 s at 44.1 kHz / 1024 is about 646 frames.
        assert!(audio >= 600, "{what}: {audio} audio tags");
        assert!(worst <= 100, "{what}: audio {worst} ms from the video");
    }
    std::fs::remove_dir_all(dir).ok();
}
