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
    assert_eq!(names, ["rpi-zero", "rpi3", "rpi4", "usb-kiosk"]);
    for path in profiles() {
        let c = Config::from_file(&path)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        assert_eq!(c.source, SourceSpec::Device("/dev/video0".into()));
        assert_eq!(c.rtsp.unwrap().port(), 8554, "{}", path.display());
        let name = path.file_stem().unwrap().to_str().unwrap();
        let got = (c.width, c.height, c.fps, c.bitrate, c.threads);
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
        assert!(stdout.contains("source = \"/dev/video0\""), "{stdout}");
    }
}
