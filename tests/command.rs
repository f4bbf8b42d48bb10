//! The command source with real producers: ffmpeg writing raw I420 (also
//! with padded lines), YUV4MPEG2 and H.264 to its stdout, viewed over RTSP
//! by ffmpeg and GStreamer; and the supervision: a child killed, one that
//! exits, one that stalls (SIGSTOP), one that does not exist, and no zombie
//! or orphan after stop.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// ffmpeg producing testsrc2 at 30 fps in real time, writing `out` to stdout.
fn producer(size: &str, filters: &str, out: &str) -> String {
    let vf = if filters.is_empty() {
        String::new()
    } else {
        format!(" -vf {filters}")
    };
    format!(
        "exec:ffmpeg -hide_banner -nostats -loglevel error -re -f lavfi -i testsrc2=size={size}:rate=30{vf} {out}"
    )
}

const RAW: &str = "-f rawvideo -pix_fmt yuv420p -";
const Y4M: &str = "-f yuv4mpegpipe -pix_fmt yuv420p -";
const H264: &str =
    "-c:v libx264 -preset ultrafast -tune zerolatency -g 15 -bsf:v h264_mp4toannexb -f h264 -";

/// Waits for `needle` in the log; panics with the log after `limit`.
fn wait_log(es: &Edgestream, needle: &str, n: usize, limit: Duration) {
    if es.wait_lines(needle, n, limit).is_none() {
        panic!(
            "no {n}x {needle:?} within {limit:?}; log:\n{}",
            es.log_text()
        );
    }
}

/// (key_frame, pts seconds) per decoded frame of a recording.
fn frames_with_times(file: &Path) -> Vec<(bool, f64)> {
    let out = tool("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "frame=key_frame,pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            let key = it.next()?.trim() == "1";
            let t = it.next()?.trim().parse::<f64>().ok()?;
            Some((key, t))
        })
        .collect()
}

/// Frames decoded over frames a 30 fps stream has in the recorded span.
fn completeness(frames: &[(bool, f64)]) -> f64 {
    let (first, last) = (frames[0].1, frames[frames.len() - 1].1);
    frames.len() as f64 / ((last - first) * 30.0 + 1.0)
}

fn check_recording(what: &str, file: &Path, min_frames: usize) {
    let frames = frames_with_times(file);
    assert!(
        frames.len() >= min_frames,
        "{what}: {} frames decoded",
        frames.len()
    );
    assert!(frames[0].0, "{what}: the first frame is not a keyframe");
    let ratio = completeness(&frames);
    eprintln!(
        "{what}: {} frames, {:.1}% complete",
        frames.len(),
        ratio * 100.0
    );
    assert!(
        ratio >= 0.95,
        "{what}: only {:.1}% of the frames",
        ratio * 100.0
    );
    let errors = decode_errors(file);
    assert!(errors.is_empty(), "{what}: decode errors:\n{errors}");
}

fn record(es: &Edgestream, name: &str, secs: u32) -> std::path::PathBuf {
    let dir = temp_dir(name);
    let out = dir.join("rec.mkv");
    ffmpeg_record(&es.url, "tcp", secs, &out);
    out
}

#[test]
fn raw_i420_from_a_child_is_encoded_and_decodes_whole() {
    let es = Edgestream::start(&[
        "--source",
        &producer("640x480", "", RAW),
        "--source-format",
        "i420",
    ]);
    wait_log(&es, "reading i420 at 640x480", 1, Duration::from_secs(10));
    let rec = record(&es, "cmd-raw", 4);
    check_recording("raw I420 child via ffmpeg", &rec, 100);
    assert!(es.stop().success());
}

/// rpicam-vid writes the camera buffer's stride; here a pad filter makes
/// 656-byte luma lines for a 640-wide picture, the padding white on gray.
/// Read with the wrong stride, the white would smear into the picture.
#[test]
fn padded_raw_lines_are_read_with_source_stride() {
    let src = "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i color=c=gray:size=640x480:rate=30 \
               -vf pad=656:480:0:0:white -f rawvideo -pix_fmt yuv420p -";
    let es = Edgestream::start(&[
        "--source",
        src,
        "--source-format",
        "i420",
        "--source-stride",
        "656",
    ]);
    wait_log(&es, "line stride 656 bytes", 1, Duration::from_secs(10));
    let rec = record(&es, "cmd-stride", 3);
    assert_eq!(probe_size(&rec), (640, 480));
    let frames = frames_with_times(&rec);
    assert!(frames.len() >= 70, "{} frames", frames.len());
    let out = tool("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&rec)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 640 * 480);
    let off = out
        .stdout
        .iter()
        .filter(|&&y| !(100..=156).contains(&y))
        .count();
    assert!(
        off < 640 * 480 / 100,
        "{off} luma samples are not gray: the padding leaked into the picture"
    );
    assert!(es.stop().success());
}

#[test]
fn y4m_from_a_child_is_recognised_and_decodes_whole() {
    let es = Edgestream::start(&["--source", &producer("320x240", "", Y4M)]);
    wait_log(
        &es,
        "reading y4m at 320x240, 30 fps",
        1,
        Duration::from_secs(10),
    );
    let rec = record(&es, "cmd-y4m", 4);
    assert_eq!(probe_size(&rec), (320, 240));
    check_recording("y4m child via ffmpeg", &rec, 100);
    assert!(es.stop().success());
}

#[test]
fn mjpeg_from_a_child_is_recognised_decoded_and_encoded() {
    let es = Edgestream::start(&[
        "--source",
        &producer("320x240", "", "-c:v mjpeg -q:v 5 -f mjpeg -"),
        "--size",
        "320x240",
    ]);
    wait_log(&es, "reading mjpeg at 320x240", 1, Duration::from_secs(10));
    let rec = record(&es, "cmd-mjpeg", 3);
    assert_eq!(probe_size(&rec), (320, 240));
    check_recording("MJPEG child via ffmpeg", &rec, 75);
    assert!(es.stop().success());
}

#[test]
fn h264_from_a_child_passes_through_to_ffmpeg_and_gstreamer() {
    gstreamer_ready();
    // The configured size is the default 640x480; the stream's SPS wins.
    let es = Edgestream::start(&["--source", &producer("320x240", "", H264)]);
    wait_log(&es, "its SPS says 320x240", 1, Duration::from_secs(10));
    wait_log(&es, "reading h264 at 320x240", 1, Duration::from_secs(1));
    wait_log(
        &es,
        "passing the camera's H.264 through",
        1,
        Duration::from_secs(10),
    );
    let rec = record(&es, "cmd-h264", 4);
    assert_eq!(probe_size(&rec), (320, 240));
    check_recording("H.264 child via ffmpeg", &rec, 100);
    let dir = temp_dir("cmd-h264-gst");
    let out = dir.join("gst.mkv");
    let o = tool("timeout")
        .args(["-s", "INT", "6", "gst-launch-1.0", "-e", "rtspsrc"])
        .arg(format!("location={}", es.url))
        .args([
            "protocols=tcp",
            "latency=100",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
        ])
        .args([
            "!",
            "tee",
            "name=t",
            "t.",
            "!",
            "queue",
            "!",
            "avdec_h264",
            "!",
            "fakesink",
        ])
        .args(["t.", "!", "queue", "!", "matroskamux", "!", "filesink"])
        .arg(format!("location={}", out.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!log.contains("ERROR"), "GStreamer:\n{log}");
    check_recording("H.264 child via GStreamer", &out, 90);
    assert!(es.stop().success());
}

/// One process as /proc/PID/stat tells it.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    state: char,
    comm: String,
}

fn processes() -> Vec<Proc> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        if rest.len() < 3 {
            continue;
        }
        v.push(Proc {
            pid,
            state: rest[0].chars().next().unwrap_or('?'),
            ppid: rest[1].parse().unwrap_or(0),
            pgrp: rest[2].parse().unwrap_or(0),
            comm,
        });
    }
    v
}

fn children_of(pid: u32) -> Vec<Proc> {
    processes().into_iter().filter(|p| p.ppid == pid).collect()
}

/// The one live child of edgestream named `comm`, waiting for it.
fn live_child(es: &Edgestream, comm: &str) -> Proc {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids: Vec<Proc> = children_of(es.pid())
            .into_iter()
            .filter(|p| p.comm == comm && p.state != 'Z')
            .collect();
        if kids.len() == 1 {
            return kids[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "children of edgestream: {:?}\n{}",
            children_of(es.pid()),
            es.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_no_zombies(es: &Edgestream) {
    let z: Vec<Proc> = children_of(es.pid())
        .into_iter()
        .filter(|p| p.state == 'Z')
        .collect();
    assert!(z.is_empty(), "zombie children: {z:?}");
}

fn assert_group_gone(pgrp: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<Proc> = processes().into_iter().filter(|p| p.pgrp == pgrp).collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A viewer records across three failures of the child (killed, stopped,
/// and a child that exits by itself after a few seconds each time); the
/// child comes back every time, the viewer stays connected and gets
/// pictures after each, and nothing is left behind.
#[test]
fn a_child_killed_stalled_or_exiting_is_restarted_and_viewers_stay() {
    // `sh -c` (our child is the shell, ffmpeg its child, in one group) that
    // ends by itself after 6 s.
    let src = "exec:sh -c \"exec ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=30 -t 6 -f yuv4mpegpipe -\"";
    let es = Edgestream::start(&["--source", src]);
    wait_log(&es, "reading y4m at 320x240", 1, Duration::from_secs(10));
    let dir = temp_dir("cmd-supervise");
    let rec = dir.join("rec.mkv");
    let url = es.url.clone();
    let rec2 = rec.clone();
    let viewer = std::thread::spawn(move || ffmpeg_record(&url, "tcp", 20, &rec2));
    std::thread::sleep(Duration::from_secs(2));

    // Killed.
    let first = live_child(&es, "ffmpeg");
    signal(first.pid, libc::SIGKILL);
    wait_log(&es, "exec:sh: exited (signal: 9", 1, Duration::from_secs(5));
    wait_log(&es, "frames again", 1, Duration::from_secs(10));
    let second = live_child(&es, "ffmpeg");
    assert_ne!(second.pid, first.pid);
    assert_no_zombies(&es);

    // Stalled: stopped, it sends nothing; TERM waits on a stopped process,
    // so it is KILLed after the grace period.
    std::thread::sleep(Duration::from_secs(1));
    signal(second.pid, libc::SIGSTOP);
    wait_log(&es, "(stalled); stopping it", 1, Duration::from_secs(5));
    wait_log(&es, "frames again", 2, Duration::from_secs(10));
    assert_group_gone(second.pid);
    assert_no_zombies(&es);

    // Exits by itself after its 6 s.
    wait_log(&es, "exited (exit status: 0)", 1, Duration::from_secs(10));
    wait_log(&es, "frames again", 3, Duration::from_secs(10));
    let last = live_child(&es, "ffmpeg");
    viewer.join().expect("the viewer kept recording");
    let frames = frames_with_times(&rec);
    let span = frames.last().unwrap().1 - frames[0].1;
    eprintln!(
        "viewer across 3 failures: {} frames over {span:.1} s",
        frames.len()
    );
    assert!(frames[0].0, "the first frame is not a keyframe");
    assert!(
        span >= 17.0,
        "the viewer's recording spans only {span:.1} s"
    );
    assert!(frames.len() >= 300, "{} frames in 20 s", frames.len());

    let pid = es.pid();
    assert!(es.stop().success());
    assert_group_gone(last.pgrp);
    let orphans: Vec<Proc> = processes()
        .into_iter()
        .filter(|p| p.ppid == pid || [first.pgrp, second.pgrp, last.pgrp].contains(&p.pgrp))
        .collect();
    assert!(orphans.is_empty(), "left after stop: {orphans:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_command_that_does_not_exist_is_reported_and_retried() {
    let es = Edgestream::start(&["--source", "exec:edgestream-no-such-producer --flag"]);
    wait_log(
        &es,
        "cannot start `edgestream-no-such-producer`: command not found",
        1,
        Duration::from_secs(5),
    );
    // Still serving, still trying (each later attempt is a debug line).
    std::thread::sleep(Duration::from_secs(2));
    assert!(is_listening(
        es.addr().rsplit(':').next().unwrap().parse().unwrap()
    ));
    let mut es = es;
    assert!(es.is_running(), "edgestream gave up:\n{}", es.log_text());
    assert!(es.stop().success());
}

#[test]
fn stdin_carries_y4m_and_its_end_ends_the_run() {
    let mut producer = tool("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .args(["testsrc2=size=320x240:rate=30", "-frames:v", "45"])
        .args(["-f", "yuv4mpegpipe", "-"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--source", "-", "--rtsp", "off"]);
    cmd.stdin(producer.stdout.take().unwrap());
    let out = cmd.output().unwrap();
    assert!(producer.wait().unwrap().success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("stdin: reading y4m at 320x240"), "{log}");
    assert!(log.contains("after 45 frames"), "{log}");
}

/// A child that floods its stderr costs a burst of log lines, not one each.
#[test]
fn a_childs_stderr_is_logged_a_line_each_and_rate_limited() {
    let src = "exec:sh -c \"i=0; while [ $i -lt 300 ]; do echo chatter $i >&2; i=$((i+1)); done; \
               exec ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=160x120:rate=30 -f yuv4mpegpipe -\"";
    let es = Edgestream::start(&["--source", src]);
    wait_log(&es, "reading y4m at 160x120", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let logged = es.count_lines("exec:sh: chatter ");
    assert!(
        (1..=20).contains(&logged),
        "{logged} of 300 stderr lines logged:\n{}",
        es.log_text()
    );
    assert_eq!(es.count_lines("exec:sh: chatter 0"), 1, "{}", es.log_text());
    assert!(es.stop().success());
}

/// Output that is no known format is a configuration error naming the key
/// to set; the run ends (status 1) and takes the child's group with it.
#[test]
fn unrecognised_output_names_source_format_and_leaves_nothing() {
    // A sleep whose argument is unique to this run, to find it again.
    let marker = format!("30.{}", std::process::id());
    let src = format!("exec:sh -c \"echo raw pixels; exec sleep {marker}\"");
    let out = std::process::Command::new(BIN)
        .args(["--source", &src, "--rtsp", "off"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("set source-format = \"i420\""), "{log}");
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<Proc> = processes()
        .into_iter()
        .filter(|p| p.comm == "sleep")
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{}/cmdline", p.pid))
                .is_ok_and(|c| c.contains(&marker))
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
