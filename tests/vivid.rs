//! End-to-end against a real kernel V4L2 device: the `vivid` virtual camera
//! in a QEMU VM (`tests/vivid/vivid-vm.sh`), edgestream inside it, and
//! real RTSP clients (ffmpeg, retina) on the host through a forwarded port.
//!
//! The guest is emulated (TCG, no KVM), so rates are low: 10 fps, which the
//! guest sustains at 640x480 with room to spare (x264 takes ~25-35 ms a frame
//! there, vivid's own pattern generator a good part of the rest).
//!
//! The binary is built with the `vm-test` profile (optimized, no LTO) into
//! target/vm-test: a debug build's pixel loops are too slow for the guest.
//! VMs run one at a time (the machine has two cores).
//!
//! Needs: qemu-system-x86_64, apt-get (the script downloads a Debian kernel,
//! busybox and v4l-utils), ffmpeg/ffprobe. `bash .ci/run` installs them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::*;

const FPS: u32 = 10;
/// Seconds recorded per format.
const RECORD_SECS: u32 = 8;

/// One VM at a time.
fn vm_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The VM script: $VIVID_VM, else the copy in tests/vivid (from the team's
/// shared tools, kept in the repository so CI has it on a clean checkout).
fn vivid_script() -> PathBuf {
    let path = std::env::var_os("VIVID_VM")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("tests/vivid/vivid-vm.sh"));
    assert!(
        path.is_file(),
        "the vivid VM script {} is missing (set VIVID_VM to use another copy)",
        path.display()
    );
    assert!(
        Command::new("sh")
            .args(["-c", "command -v qemu-system-x86_64"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "qemu-system-x86_64 is not installed; run `bash .ci/run` or `apt-get install qemu-system-x86`"
    );
    path
}

/// Builds (once) the optimized binary the guest runs.
fn vm_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = manifest_dir().join("target/vm-test");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--profile", "vm-test", "--bin", "edgestream"])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(manifest_dir())
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "building the vm-test binary failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = target.join("vm-test/edgestream");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running VM with edgestream inside, commands through a shared directory.
struct Vm {
    child: Option<Child>,
    port: u16,
    share: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    commands: u32,
}

impl Vm {
    /// Boots the VM running edgestream with `args` and waits until its RTSP
    /// port listens.
    fn start(name: &str, args: &[&str]) -> Self {
        let script = vivid_script();
        let bin = vm_binary();
        let share = temp_dir(&format!("vivid-{name}"));
        let ready = share.join("ready");
        let port = free_port();
        let guest_run = manifest_dir().join("tests/vivid/guest-run.sh");
        let mut child = Command::new(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--ready-file")
            .arg(&ready)
            .arg("--share")
            .arg(&share)
            .arg("--file")
            .arg(format!("{}:/payload/edgestream", bin.display()))
            .arg("--")
            .arg(&guest_run)
            .args(args)
            .env("VIVID_VM_TIMEOUT", "240")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vivid-vm.sh");
        let log = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if std::env::var_os("EDGESTREAM_TEST_LOG").is_some() {
                        eprintln!("vm| {line}");
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut vm = Self {
            child: Some(child),
            port,
            share,
            log,
            commands: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !ready.exists() {
            let exited = vm.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the VM did not get edgestream listening ({exited:?}):\n{}",
                    vm.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        vm
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/live", self.port)
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Runs a shell command in the guest; returns its output.
    fn guest(&mut self, cmd: &str) -> String {
        self.commands += 1;
        let name = format!("cmd-{:03}", self.commands);
        let tmp = self.share.join(format!("{name}.tmp"));
        std::fs::write(&tmp, cmd).unwrap();
        std::fs::rename(&tmp, self.share.join(format!("{name}.sh"))).unwrap();
        let done = self.share.join(format!("{name}.done"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done.exists() {
            assert!(
                Instant::now() < deadline,
                "the guest did not run `{cmd}`:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(self.share.join(format!("{name}.sh.out"))).unwrap_or_default()
    }

    /// Stops edgestream with SIGTERM and returns the VM's exit status
    /// (edgestream's).
    fn stop(mut self) -> (ExitStatus, String) {
        self.guest("kill -TERM $(cat /tmp/edgestream.pid)");
        let mut child = self.child.take().unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("the VM did not exit:\n{}", self.log_text()));
        // The output threads finish with the pipes.
        std::thread::sleep(Duration::from_millis(200));
        (status, self.log_text())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // vivid-vm.sh stops qemu on SIGTERM.
            signal(c.id(), libc::SIGTERM);
            if wait_timeout(&mut c, Duration::from_secs(15)).is_none() {
                let _ = c.kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.share);
    }
}

/// Records RECORD_SECS seconds of `format` at `size` over RTSP/TCP and checks
/// that at least 90% of the frames decode, at the right size.
fn capture(format: &str, width: u32, height: u32) {
    let _one = vm_lock();
    let size = format!("{width}x{height}");
    let fps = FPS.to_string();
    let vm = Vm::start(
        &format!("{format}-{size}"),
        &[
            "--source",
            "/dev/video0",
            "--size",
            &size,
            "--fps",
            &fps,
            "--camera-format",
            format,
            "--bitrate",
            "800",
        ],
    );
    let dir = temp_dir(&format!("vivid-rec-{format}-{size}"));
    let out = dir.join("rec.mkv");
    ffmpeg_record(&vm.url(), "tcp", RECORD_SECS, &out);
    let frames = probe_frames(&out);
    let errors = decode_errors(&out);
    let (status, log) = vm.stop();
    let expected = (RECORD_SECS * FPS) as usize;
    eprintln!(
        "vivid {format} {size}: {} of {expected} frames decoded",
        frames.len()
    );
    assert!(
        log.contains(&format!("x264 {width}x{height} at {FPS} fps from {format}")),
        "the camera was not captured as {format} {size}:\n{log}"
    );
    assert!(errors.is_empty(), "decode errors:\n{errors}\n{log}");
    assert!(
        frames.len() * 100 >= expected * 90,
        "{format} {size}: {} frames decoded, expected at least 90% of {expected}\n{log}",
        frames.len()
    );
    assert!(frames[0].0, "the first frame is not a keyframe");
    assert_eq!(probe_size(&out), (width, height));
    assert!(status.success(), "edgestream exited with {status}:\n{log}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn vivid_yuyv_640x480() {
    capture("YUYV", 640, 480);
}

#[test]
fn vivid_yuyv_640x360() {
    capture("YUYV", 640, 360);
}

#[test]
fn vivid_nv12_640x480() {
    capture("NV12", 640, 480);
}

#[test]
fn vivid_nv12_640x360() {
    capture("NV12", 640, 360);
}

#[test]
fn vivid_uyvy_640x360() {
    capture("UYVY", 640, 360);
}

#[test]
fn vivid_yu12_640x480() {
    capture("YU12", 640, 480);
}

#[test]
fn vivid_yu12_640x360() {
    capture("YU12", 640, 360);
}

/// Frames that arrived in [from, to).
fn frames_between(
    times: &[(Duration, bool)],
    from: Duration,
    to: Duration,
) -> Vec<(Duration, bool)> {
    times
        .iter()
        .copied()
        .filter(|&(t, _)| t >= from && t < to)
        .collect()
}

/// The camera is unplugged, fails, stalls and is paused for privacy while one
/// RTSP viewer stays connected and sees the slate meanwhile; after each the
/// stream comes back, starting with a keyframe, without restarting
/// edgestream.
#[test]
fn vivid_camera_recovers_and_pauses_while_the_viewer_stays() {
    let _one = vm_lock();
    let fps = FPS.to_string();
    let mut vm = Vm::start(
        "recovery",
        &[
            "--source",
            "/dev/video0",
            "--size",
            "640x360",
            "--fps",
            &fps,
            "--camera-format",
            "YUYV",
            "--keyint",
            "10",
        ],
    );
    // The listing flags and a size/rate the camera lacks, against the real
    // driver (enumeration works while another descriptor streams).
    let listed = vm.guest(
        "/payload/edgestream --list-devices; /payload/edgestream --source /dev/video0 --list-formats; \
         /payload/edgestream --source /dev/video0 --size 640x480 --fps 30 --rtsp off",
    );
    for needle in [
        "/dev/video0: vivid (driver vivid, platform:vivid-000): video capture",
        "YUYV (YUYV 4:2:2): converted to I420",
        "YU12 (Planar YUV 4:2:0): zero-copy into x264",
        "NV12 (Y/UV 4:2:0): zero-copy into x264",
        "RGB3 (24-bit RGB 8-8-8): not usable by edgestream",
        "640x480: 25, 15, 12.5, 10, 5, 4, 2, 1 fps",
        "the camera cannot deliver 640x480 at 30 fps in a format edgestream takes",
        "rc=1",
    ] {
        assert!(
            listed.contains(needle),
            "{needle:?} missing from:\n{listed}"
        );
    }
    let url = vm.url();
    const VIEW_SECS: f64 = 56.0;
    let t0 = Instant::now();
    let viewer = std::thread::spawn(move || block_on(retina_view(&url, "tcp", VIEW_SECS)));
    let at = |secs: u64| {
        let due = t0 + Duration::from_secs(secs);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        t0.elapsed()
    };
    let ctl = |c: &str| format!("v4l2-ctl -d /dev/video0 -c {c}");
    // (what, when it was done, seconds allowed before frames are back)
    let mut events: Vec<(&str, Duration, f64)> = Vec::new();

    events.push(("unplug", at(6), 5.0));
    vm.guest(&ctl("disconnect=1"));

    events.push(("fatal streaming error", at(14), 5.0));
    vm.guest(&ctl("inject_fatal_streaming_error=1"));

    // Stop delivering: every buffer dropped. Detected after 2 s, reopened,
    // still silent, so the backoff grows until the camera delivers again.
    events.push(("stall", at(22), 0.0));
    vm.guest(&ctl("percentage_of_dropped_buffers=100"));
    events.push(("stall over", at(28), 10.0));
    vm.guest(&ctl("percentage_of_dropped_buffers=0"));

    // Privacy: SIGUSR1 closes the camera; SIGUSR1 again reopens it.
    events.push(("privacy on", at(40), 0.0));
    vm.guest("kill -USR1 $(cat /tmp/edgestream.pid)");
    std::thread::sleep(Duration::from_secs(1));
    let fds = vm.guest("ls -l /proc/$(cat /tmp/edgestream.pid)/fd | grep -c /dev/video0");
    events.push(("privacy off", at(45), 5.0));
    vm.guest("kill -USR1 $(cat /tmp/edgestream.pid)");

    let viewed = viewer.join().unwrap();
    let (status, log) = vm.stop();
    let viewed = viewed.unwrap_or_else(|e| panic!("the viewer was dropped: {e}\n{log}"));
    let times: Vec<(Duration, bool)> = viewed
        .frame_times
        .iter()
        .map(|&(t, key)| (t.saturating_duration_since(t0), key))
        .collect();
    let times = &times;
    let end = Duration::from_secs_f64(VIEW_SECS);

    assert!(
        fds.trim().starts_with('0'),
        "during the privacy pause edgestream still had /dev/video0 open ({fds})\n{log}"
    );
    for (i, &(what, when, allowed)) in events.iter().enumerate() {
        let next = events.get(i + 1).map_or(end, |e| e.1);
        let window = frames_between(times, when, next);
        if allowed == 0.0 {
            continue;
        }
        // While the camera is away the slate comes at 2 fps (gaps of 0.5 s);
        // the camera's frames come at FPS. The recovery is the first frame
        // after the event that starts a run at the camera's pace, once the
        // slate has been seen (right after an unplug or an error, frames
        // already in flight still come at the camera's pace).
        let before = frames_between(times, Duration::ZERO, when).last().copied();
        let slate_on_at_start = matches!(what, "stall over" | "privacy off");
        let mut seen_slate = slate_on_at_start;
        let mut prev = before.map_or(when, |f| f.0);
        let mut back: Option<(Duration, bool)> = None;
        let camera_pace = Duration::from_millis(300);
        for (i, &(t, key)) in window.iter().enumerate() {
            if t - prev >= Duration::from_millis(400) {
                seen_slate = true;
            }
            prev = t;
            let run = window[i..].windows(2).take(4);
            if seen_slate && run.len() == 4 && run.clone().all(|w| w[1].0 - w[0].0 < camera_pace) {
                back = Some((t, key));
                break;
            }
        }
        let (t_back, key) = back.unwrap_or_else(|| {
            panic!("{what}: no camera frames between {when:?} and {next:?}\n{log}")
        });
        let took = (t_back - when).as_secs_f64();
        eprintln!("vivid recovery: {what}: frames back {took:.1} s after it");
        assert!(
            took <= allowed,
            "{what}: frames came back after {took:.1} s, allowed {allowed} s\n{log}"
        );
        assert!(
            key,
            "{what}: the first frame after it is not a keyframe\n{log}"
        );
        let after = frames_between(times, t_back, next).len();
        assert!(
            after as f64 >= (next - t_back).as_secs_f64() * FPS as f64 * 0.8 - 2.0,
            "{what}: only {after} frames in the {:.1} s after recovery\n{log}",
            (next - t_back).as_secs_f64()
        );
    }
    // Only the privacy card (2 fps) while the pause was on (1 s of slack for
    // frames in flight).
    let privacy = events.iter().find(|e| e.0 == "privacy on").unwrap().1;
    let resumed = events.iter().find(|e| e.0 == "privacy off").unwrap().1;
    let during = frames_between(times, privacy + Duration::from_secs(1), resumed);
    let secs = (resumed - privacy).as_secs_f64() - 1.0;
    assert!(
        (during.len() as f64) >= secs * 2.0 - 2.0 && (during.len() as f64) <= secs * 2.0 + 2.0,
        "{} frames in the {secs:.1} s of the privacy pause, not the slate's 2 fps\n{log}",
        during.len()
    );

    for needle in [
        "camera /dev/video0 gone",
        "capture error",
        "stalled: no frame for 2 s",
        "privacy pause: capture stopped, camera /dev/video0 closed",
        "privacy pause off",
        "frames again after",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    assert!(!log.contains("panicked"), "{log}");
    assert!(status.success(), "edgestream exited with {status}:\n{log}");
}

/// The camera unplugged for 45 s (vivid's disconnect, then the device node
/// gone until it is "plugged in" again) with a retina viewer, an ffmpeg
/// recording and an RTMP push to nginx on the host (10.0.2.2 from the
/// guest): the viewer stays connected and gets the slate at 2 fps, the
/// recording of the outage decodes at the camera's size, the camera comes
/// back with a keyframe, and the push stays published throughout.
#[test]
fn vivid_unplugged_for_45_s_viewer_and_push_stay_on_the_slate() {
    let _one = vm_lock();
    let dir = temp_dir("vivid-unplug");
    let rtmp = free_port();
    let mut nginx = Nginx::start(&dir.join("nginx"), rtmp);
    let fps = FPS.to_string();
    let push = format!("rtmp://10.0.2.2:{rtmp}/live/cam");
    let mut vm = Vm::start(
        "unplug45",
        &[
            "--source",
            "/dev/video0",
            "--size",
            "640x360",
            "--fps",
            &fps,
            "--camera-format",
            "YUYV",
            "--keyint",
            "10",
            "--push",
            &push,
        ],
    );
    let url = vm.url();
    const VIEW_SECS: f64 = 70.0;
    let t0 = Instant::now();
    let viewer = {
        let url = url.clone();
        std::thread::spawn(move || block_on(retina_view(&url, "tcp", VIEW_SECS)))
    };
    let at = |secs: u64| {
        let due = t0 + Duration::from_secs(secs);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        t0.elapsed()
    };
    let unplugged = at(8);
    vm.guest("v4l2-ctl -d /dev/video0 -c disconnect=1; mv /dev/video0 /dev/video0-unplugged");
    // Record 10 s of the outage.
    at(20);
    let rec = dir.join("outage.mkv");
    ffmpeg_record(&url, "tcp", 10, &rec);
    let plugged = at(53);
    vm.guest("mv /dev/video0-unplugged /dev/video0");

    let viewed = viewer.join().unwrap();
    let (status, log) = vm.stop();
    let viewed = viewed.unwrap_or_else(|e| panic!("the viewer was dropped: {e}\n{log}"));
    let times: Vec<(Duration, bool)> = viewed
        .frame_times
        .iter()
        .map(|&(t, key)| (t.saturating_duration_since(t0), key))
        .collect();
    // The outage: the slate at 2 fps, never a gap of a second.
    let outage = frames_between(&times, unplugged + Duration::from_secs(3), plugged);
    let secs = (plugged - unplugged).as_secs_f64() - 3.0;
    eprintln!(
        "vivid unplug: {} slate frames in {secs:.0} s, longest gap {:?}",
        outage.len(),
        viewed.max_gap
    );
    assert!(
        outage.len() as f64 >= secs * 2.0 * 0.8,
        "{} frames in {secs:.0} s of outage\n{log}",
        outage.len()
    );
    assert!(
        outage.len() as f64 <= secs * 2.0 + 3.0,
        "{} frames in {secs:.0} s of outage: not the slate\n{log}",
        outage.len()
    );
    assert!(
        outage
            .windows(2)
            .all(|w| w[1].0 - w[0].0 < Duration::from_secs(1)),
        "a gap during the outage\n{log}"
    );
    // The camera again within one reopen interval (10 s) and a bit, keyframe first.
    let after = frames_between(&times, plugged, Duration::from_secs_f64(VIEW_SECS));
    let back = after
        .windows(4)
        .position(|w| {
            w.windows(2)
                .all(|p| p[1].0 - p[0].0 < Duration::from_millis(300))
        })
        .map(|i| after[i])
        .unwrap_or_else(|| panic!("no camera frames after it was plugged in\n{log}"));
    let took = (back.0 - plugged).as_secs_f64();
    eprintln!("vivid unplug: camera frames back {took:.1} s after plugging in");
    assert!(took <= 12.0, "camera back after {took:.1} s\n{log}");
    assert!(back.1, "the first camera frame is not a keyframe\n{log}");
    // The recording of the outage decodes, at the camera's size.
    let frames = probe_frames(&rec);
    assert!(
        (15..=25).contains(&frames.len()),
        "{} frames in 10 s of outage",
        frames.len()
    );
    assert_eq!(probe_size(&rec), (640, 360));
    assert_eq!(decode_errors(&rec), "");
    // The push stayed published: no loss logged, and nginx has it all.
    assert!(log.contains("push rtmp://10.0.2.2:"), "{log}");
    assert!(!log.contains(": lost after"), "the push was dropped\n{log}");
    assert!(status.success(), "edgestream exited with {status}:\n{log}");
    nginx.stop();
    let pushed = probe_frames(&nginx.dir.join("rec").join("cam.flv"));
    eprintln!("vivid unplug: {} frames pushed to nginx", pushed.len());
    assert!(pushed.len() >= 120, "{} frames pushed", pushed.len());
    std::fs::remove_dir_all(dir).ok();
}
