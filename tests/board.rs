//! The board profiles (board/*.toml) are valid config files: the library
//! loads each one, and the real binary accepts it with --config.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use edgestream::config::{Config, GpioLine, SourceSpec};

fn profiles() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

fn gpio(line: u32) -> Option<GpioLine> {
    Some(GpioLine {
        chip: "/dev/gpiochip0".into(),
        line,
        active_low: false,
    })
}

#[test]
fn every_profile_loads_and_is_tuned_for_its_board() {
    let names: Vec<String> = profiles()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "rpi-zero-csi",
            "rpi-zero",
            "rpi3-csi",
            "rpi3",
            "rpi4-csi",
            "rpi4",
            "usb-kiosk"
        ]
    );
    for path in profiles() {
        let c = Config::from_file(&path)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        let name = path.file_stem().unwrap().to_str().unwrap();
        if name.ends_with("-csi") {
            check_csi_profile(name, &c);
            continue;
        }
        assert_eq!(c.source, SourceSpec::Device("/dev/video0".into()));
        assert_eq!(c.rtsp.unwrap().port(), 8554, "{}", path.display());
        let got = (c.size.width, c.size.height, c.fps, c.bitrate, c.threads);
        let (want, led, button) = match name {
            // One ARMv6 core: 640x480 at 10 fps, threads chosen (one).
            "rpi-zero" => ((640, 480, 10, 600, 0), gpio(17), gpio(27)),
            "rpi3" => ((1280, 720, 30, 2500, 3), gpio(17), gpio(27)),
            "rpi4" => ((1920, 1080, 30, 4500, 3), gpio(17), gpio(27)),
            "usb-kiosk" => ((1280, 720, 30, 2500, 0), None, None),
            other => panic!("no expectations for board/{other}.toml"),
        };
        assert_eq!(got, want, "{name}");
        assert_eq!((c.led, c.button), (led, button), "{name}");
    }
}

/// A CSI profile runs rpicam-vid with the hardware encoder at the size and
/// rate the config announces, in the options rpicam-apps documents.
fn check_csi_profile(name: &str, c: &Config) {
    let SourceSpec::Command(argv) = &c.source else {
        panic!("{name}: source is not a command: {:?}", c.source);
    };
    assert_eq!(argv[0], "rpicam-vid", "{name}");
    assert_eq!(
        c.source_format,
        Some(edgestream::source::command::StreamFormat::H264),
        "{name}"
    );
    let arg = |flag: &str| {
        let i = argv.iter().position(|a| a == flag);
        i.and_then(|i| argv.get(i + 1)).map(String::as_str)
    };
    let has = |flag: &str| argv.iter().any(|a| a == flag);
    assert_eq!(arg("-t"), Some("0"), "{name}: runs until stopped");
    assert_eq!(arg("-o"), Some("-"), "{name}: writes to stdout");
    assert_eq!(arg("--codec"), Some("h264"), "{name}");
    assert!(has("-n") && has("--inline") && has("--flush"), "{name}");
    assert_eq!(arg("--profile"), Some("baseline"), "{name}");
    assert_eq!(
        arg("--width"),
        Some(c.size.width.to_string().as_str()),
        "{name}"
    );
    assert_eq!(
        arg("--height"),
        Some(c.size.height.to_string().as_str()),
        "{name}"
    );
    assert_eq!(
        arg("--framerate"),
        Some(c.fps.to_string().as_str()),
        "{name}"
    );
    let bits: u32 = arg("-b").unwrap().parse().unwrap();
    assert_eq!(bits, c.bitrate * 1000, "{name}: -b and bitrate agree");
    let intra: u32 = arg("--intra").unwrap().parse().unwrap();
    assert!(intra <= c.fps, "{name}: an IDR at least every second");
    let (w, h) = match name {
        "rpi-zero-csi" | "rpi3-csi" => (1280, 720),
        "rpi4-csi" => (1920, 1080),
        other => panic!("no expectations for board/{other}.toml"),
    };
    assert_eq!((c.size.width, c.size.height, c.fps), (w, h, 30), "{name}");
    assert_eq!(
        (c.led.clone(), c.button.clone()),
        (gpio(17), gpio(27)),
        "{name}"
    );
}

#[test]
fn the_binary_accepts_every_profile() {
    for path in profiles() {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("--print-config")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let csi = path.to_string_lossy().ends_with("-csi.toml");
        let want = if csi {
            "source = \"exec:rpicam-vid -t 0 -n"
        } else {
            "source = \"/dev/video0\""
        };
        assert!(stdout.contains(want), "{stdout}");
    }
}
