//! End-to-end `audio = "silent"`: the real binary pushing H.264 and a silent
//! AAC-LC track to nginx-rtmp (RTMP) and to a raw FLV receiver at once;
//! ffprobe sees both codecs, ffmpeg decodes both without an error, and the
//! audio timeline keeps up with the video's.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use edgestream::flv::{TAG_AUDIO, TAG_VIDEO, read};

/// The codec names ffprobe sees in `input` (a file or a URL, after
/// `args`), sorted.
fn codecs(input: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Vec<String> {
    let out = tool("timeout")
        .args(["30", "ffprobe", "-v", "error"])
        .args(args)
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(input)
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
        assert_eq!(codecs(&path, &[]), vec!["aac", "h264"], "{what}");
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

/// Codec names ffprobe sees on the RTSP stream over `transport`, sorted.
fn rtsp_codecs(url: &str, transport: &str) -> Vec<String> {
    codecs(url, &["-rtsp_transport", transport])
}

/// Packet times (s) of a recording's video and audio streams.
fn packet_times(file: &Path) -> (Vec<f64>, Vec<f64>) {
    let out = tool("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=codec_type,pts_time"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split(',');
        let (Some(kind), Some(Ok(t))) = (it.next(), it.next().map(str::parse::<f64>)) else {
            continue;
        };
        match kind {
            "video" => video.push(t),
            "audio" => audio.push(t),
            _ => {}
        }
    }
    video.sort_by(f64::total_cmp);
    audio.sort_by(f64::total_cmp);
    (video, audio)
}

/// The largest distance (s) between a video packet and the newest audio
/// packet at or before it.
fn worst_offset(video: &[f64], audio: &[f64]) -> f64 {
    video
        .iter()
        .filter_map(|&t| {
            let i = audio.partition_point(|&a| a <= t);
            (i > 0).then(|| t - audio[i - 1])
        })
        .fold(0.0, f64::max)
}

#[test]
fn rtsp_has_h264_and_aac_over_tcp_and_udp() {
    let es = Edgestream::start(&["--size", "320x240", "--fps", "30", "--audio", "silent"]);
    let dir = temp_dir("rtsp-audio");
    let secs = 10;
    for transport in ["tcp", "udp"] {
        assert_eq!(
            rtsp_codecs(&es.url, transport),
            vec!["aac", "h264"],
            "{transport}"
        );
        // Decodes both streams (-f null) and keeps a copy to measure.
        let rec = dir.join(format!("{transport}.mkv"));
        let out = tool("timeout")
            .arg(format!("{}", secs + 30))
            .args(["ffmpeg", "-hide_banner", "-v", "error"])
            .args(["-rtsp_transport", transport, "-i", &es.url])
            .args(["-map", "0", "-t", &secs.to_string(), "-c", "copy", "-y"])
            .arg(&rec)
            .args(["-map", "0", "-t", &secs.to_string(), "-f", "null", "-"])
            .output()
            .unwrap();
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{transport}: {}\n{errors}",
            out.status
        );
        assert!(errors.trim().is_empty(), "{transport}: {errors}");
        let (video, audio) = packet_times(&rec);
        let worst = worst_offset(&video, &audio);
        let end = video.last().unwrap() - audio.last().unwrap();
        eprintln!(
            "rtsp {transport}: {} video frames, {} audio frames, video at most {:.0} ms \
             after the newest audio, last frames {:.0} ms apart",
            video.len(),
            audio.len(),
            worst * 1000.0,
            end * 1000.0
        );
        // 10 s: 300 video frames, 430.7 audio frames.
        assert!(video.len() >= 285, "{transport}: {} video", video.len());
        assert!(audio.len() >= 409, "{transport}: {} audio", audio.len());
        assert!(worst <= 0.1, "{transport}: {worst} s");
        assert!(
            end.abs() <= 0.1,
            "{transport}: the tracks end {end} s apart"
        );
    }
    assert!(es.stop().success());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn retina_plays_both_tracks_and_video_only_stays_video_only() {
    let es = Edgestream::start(&["--size", "320x240", "--fps", "30", "--audio", "silent"]);
    for transport in ["tcp", "udp"] {
        let v = block_on(retina_view_tracks(&es.url, transport, 6.0))
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        eprintln!("retina {transport}: {v:?}");
        assert_eq!(v.encodings, ["video/h264", "audio/mpeg4-generic"]);
        assert!(v.video_frames >= 150, "{transport}: {v:?}");
        // 6 s at 44.1 kHz / 1024 is 258 frames.
        assert!(v.audio_frames >= 220, "{transport}: {v:?}");
        assert_eq!(v.odd_audio_frames, 0);
        assert!(v.worst_av_offset <= 0.1, "{transport}: {v:?}");
        assert!((v.last.0 - v.last.1).abs() <= 0.1, "{transport}: {v:?}");
    }
    // A viewer that sets up only the video still plays.
    let v = block_on(retina_view(&es.url, "tcp", 3.0)).unwrap();
    assert!(v.frames >= 60 && v.first_is_key, "{v:?}");
    assert!(es.stop().success());
    // Without the option, the stream has no audio.
    let es = Edgestream::start(&["--size", "320x240"]);
    assert_eq!(rtsp_codecs(&es.url, "tcp"), vec!["h264"]);
    assert!(es.stop().success());
}
