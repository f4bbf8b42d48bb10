//! ffmpeg and ffprobe as peers: record a stream, probe and decode files.

use std::path::Path;

use super::process::tool;

/// Records `secs` seconds of the stream with ffmpeg (no re-encoding).
pub fn ffmpeg_record(url: &str, transport: &str, secs: u32, out: &Path) {
    let status = tool("timeout")
        .arg(format!("{}", secs + 30))
        .arg("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-i",
            url,
        ])
        .args(["-t", &secs.to_string(), "-c", "copy", "-y"])
        .arg(out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "ffmpeg recording over {transport} failed: {status}"
    );
}

/// Frame facts from ffprobe: (key_frame, pict_type) per frame, decoding them.
pub fn probe_frames(file: &Path) -> Vec<(bool, String)> {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame,pict_type",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split(',');
            let key = it.next().unwrap_or("0").trim() == "1";
            (key, it.next().unwrap_or("").trim().to_string())
        })
        .collect()
}

/// Decodes the whole file; returns ffmpeg's error output (empty when clean).
pub fn decode_errors(file: &Path) -> String {
    let out = tool("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "decoding {} failed", file.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Width and height of the first video stream.
pub fn probe_size(file: &Path) -> (u32, u32) {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.trim().split(',');
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}
