//! The static armel binary (every Raspberry Pi) on an emulated ARM1176, the
//! Pi Zero / Pi 1 CPU: it must be a static soft-float ARM executable within
//! the 4 MiB budget (5 MiB with WebRTC), x264 must run its ARMv6 code (no NEON, no SIGILL),
//! ffprobe on the host must decode its RTSP stream, and (with WebRTC) the
//! host's Chromium must play it over WHEP.
//!
//! Runs when EDGESTREAM_ARM_BIN names the binary; `bash .ci/run` builds it
//! and sets that, plus EDGESTREAM_REQUIRE_ARM=1, under which a missing
//! binary fails the test instead of skipping it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The size budget for the stripped binary: 4 MiB, and 5 MiB with WebRTC
/// (the `webrtc` feature: str0m, dimpl, ring's P-256 and the RustCrypto
/// ciphers, about 1.5 MB). The binary says which it has in `--version`.
fn budget(webrtc: bool) -> u64 {
    if webrtc {
        5 * 1024 * 1024
    } else {
        4 * 1024 * 1024
    }
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Checks the ELF header: 32-bit little-endian ARM, EABI5 soft-float, no
/// interpreter or dynamic section (fully static), no symbol table (stripped).
fn check_elf(bin: &[u8]) {
    assert_eq!(&bin[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bin[4], 1, "not a 32-bit ELF");
    assert_eq!(bin[5], 1, "not little-endian");
    assert_eq!(u16le(bin, 18), 40, "e_machine is not ARM");
    let flags = u32le(bin, 36);
    assert_eq!(flags >> 24, 5, "not EABI version 5: {flags:#x}");
    assert_ne!(flags & 0x200, 0, "not the soft-float ABI: {flags:#x}");
    let (phoff, phentsize, phnum) = (
        u32le(bin, 28) as usize,
        u16le(bin, 42) as usize,
        u16le(bin, 44) as usize,
    );
    for i in 0..phnum {
        let p_type = u32le(bin, phoff + i * phentsize);
        assert!(
            p_type != 2 && p_type != 3,
            "program header {i} is PT_DYNAMIC or PT_INTERP: not a static binary"
        );
    }
    let (shoff, shentsize, shnum) = (
        u32le(bin, 32) as usize,
        u16le(bin, 46) as usize,
        u16le(bin, 48) as usize,
    );
    for i in 0..shnum {
        let sh_type = u32le(bin, shoff + i * shentsize + 4);
        assert_ne!(sh_type, 2, "has a SHT_SYMTAB: not stripped");
    }
}

#[test]
fn armel_static_binary_streams_under_qemu_arm1176() {
    let Some(bin) = arm_bin() else { return };
    let bin = bin.as_path();
    let bytes = std::fs::read(bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let size = bytes.len() as u64;
    eprintln!(
        "armel binary: {} bytes ({:.2} MiB)",
        size,
        size as f64 / 1048576.0
    );
    check_elf(&bytes);
    let version = arm_version(bin);
    let webrtc = version.contains("webrtc");
    let budget = budget(webrtc);
    assert!(
        size <= budget,
        "{size} bytes is over the {} MiB budget ({version:?})",
        budget / 1048576
    );

    let mut cmd = tool("qemu-arm");
    cmd.args(["-cpu", "arm1176"]).arg(bin);
    // Emulated, an ARM1176 encodes slowly: a small picture, a generous wait.
    let es = Edgestream::start_command(
        cmd,
        &["--size", "320x240", "--fps", "10", "--log-level", "debug"],
        Duration::from_secs(120),
    );
    let log = es.log_text();
    assert!(
        log.contains("using cpu capabilities: ARMv6") && !log.contains("NEON"),
        "x264 should run its ARMv6 code on an ARM1176:\n{log}"
    );

    let dir = temp_dir("arm-qemu");
    let rec = dir.join("arm.mkv");
    ffmpeg_record(&es.url, "tcp", 6, &rec);
    let frames = probe_frames(&rec);
    assert!(frames.len() >= 20, "only {} frames in 6 s", frames.len());
    assert!(frames[0].0, "the first frame is not a keyframe");
    assert_eq!(probe_size(&rec), (320, 240));
    let errors = decode_errors(&rec);
    assert!(errors.is_empty(), "decode errors: {errors}");
    eprintln!(
        "armel under qemu-arm -cpu arm1176: ffprobe decoded {} frames of 320x240",
        frames.len()
    );
    let status = es.stop();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(dir).ok();
}

/// The armel binary from EDGESTREAM_ARM_BIN, or None (the test skips) when
/// unset and EDGESTREAM_REQUIRE_ARM is not.
fn arm_bin() -> Option<std::path::PathBuf> {
    let Some(bin) = std::env::var_os("EDGESTREAM_ARM_BIN") else {
        assert!(
            std::env::var_os("EDGESTREAM_REQUIRE_ARM").is_none(),
            "EDGESTREAM_REQUIRE_ARM is set but EDGESTREAM_ARM_BIN is not"
        );
        eprintln!(
            "armel test skipped: set EDGESTREAM_ARM_BIN to the arm-unknown-linux-gnueabi binary (bash .ci/run does)"
        );
        return None;
    };
    Some(bin.into())
}

/// `--version` of the binary under qemu-arm: it lists the features.
fn arm_version(bin: &Path) -> String {
    let version = tool("qemu-arm")
        .args(["-cpu", "arm1176"])
        .arg(bin)
        .arg("--version")
        .output()
        .expect("qemu-arm runs");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.contains("features:"), "--version: {version:?}");
    version
}

/// The armel binary with WebRTC, emulated, serves the host's Chromium over
/// WHEP: ICE, DTLS (P-256 in pure Rust on an emulated ARM1176) and SRTP,
/// to decoded frames, and the page says it plays over WebRTC. Without the
/// feature (a `--no-default-features` build) there is nothing to test.
#[test]
fn armel_binary_serves_whep_to_chromium() {
    use common::chromium::{Chromium, Reports, json_num};
    let Some(bin) = arm_bin() else { return };
    if !arm_version(&bin).contains("webrtc") {
        eprintln!("armel WHEP test skipped: the binary has no webrtc feature");
        return;
    }
    let http = format!("127.0.0.1:{}", free_port());
    let mut cmd = tool("qemu-arm");
    cmd.args(["-cpu", "arm1176"]).arg(&bin);
    let es = Edgestream::start_command(
        cmd,
        &["--size", "320x240", "--fps", "10", "--http", &http],
        Duration::from_secs(120),
    );
    let reports = Reports::listen();
    let _browser = Chromium::open(&format!("http://{http}/?report={}", reports.url));
    let started = std::time::Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(90) {
        let Some(r) = reports.next(Duration::from_secs(20)) else {
            break;
        };
        assert!(
            !r.contains("\"via\":\"mse\""),
            "the page fell back to MSE: {r}\n{}",
            es.log_text()
        );
        let decoded = json_num(&r, "frames_decoded").unwrap_or(0.0);
        if decoded >= 50.0 {
            eprintln!(
                "armel under qemu-arm served WHEP: {decoded} frames decoded by Chromium, \
                 first frame {:.0} ms after load, {:.1} s in all",
                json_num(&r, "first_frame_ms").unwrap_or(-1.0),
                started.elapsed().as_secs_f64()
            );
            let status = es.stop();
            assert!(status.success(), "{status}");
            return;
        }
        last = r;
    }
    panic!(
        "Chromium decoded too little over WHEP: {last}\n{}",
        es.log_text()
    );
}

#[test]
fn cross_and_plain_cargo_get_the_same_static_settings() {
    // cross reads Cross.toml only under that exact name.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(!root.join("cross.toml").exists());
    let read = |p: &str| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(root.join(p)).unwrap()).unwrap()
    };
    let cross = read("Cross.toml");
    let cargo = read("board/cargo/config.toml");
    // Not in .cargo/config.toml: there it would hit native builds on ARM.
    assert!(!read(".cargo/config.toml").contains_key("target"));
    for target in [
        "arm-unknown-linux-gnueabi",
        "armv7-unknown-linux-gnueabihf",
        "aarch64-unknown-linux-gnu",
    ] {
        let df = &cross["target"][target]["dockerfile"];
        assert_eq!(df["file"].as_str(), Some("board/Dockerfile"), "{target}");
        assert_eq!(df["build-args"]["TARGET"].as_str(), Some(target));
        // The linker and flags cross passes into its container are the
        // ones plain cargo builds take from board/cargo/config.toml.
        let t = &cargo["target"][target];
        let linker = t["linker"].as_str().unwrap();
        let flags: Vec<&str> = t["rustflags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(flags, ["-C", "target-feature=+crt-static"], "{target}");
        let var = format!("CARGO_TARGET_{}", target.to_uppercase().replace('-', "_"));
        let env: Vec<&str> = cross["target"][target]["env"]["passthrough"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut want = vec![
            format!("{var}_LINKER={linker}"),
            format!("{var}_RUSTFLAGS={}", flags.join(" ")),
        ];
        // armel only: where rustup has no rust-std to download, std is
        // built from source, which needs RUSTC_BOOTSTRAP in the container
        // (board/README.md). Unset on the host, it is not passed.
        if target == "arm-unknown-linux-gnueabi" {
            want.push("RUSTC_BOOTSTRAP".into());
        }
        assert_eq!(env, want, "{target}");
        // The image installs that linker.
        let out = Command::new("sh")
            .arg(root.join("board/deps.sh"))
            .arg(target)
            .output()
            .unwrap();
        assert!(out.status.success(), "deps.sh {target}");
        let deps = String::from_utf8_lossy(&out.stdout);
        assert!(
            deps.lines()
                .any(|l| l == format!("gcc-{}", linker.trim_end_matches("-gcc"))),
            "{target}: linker {linker} is not in deps.sh: {deps}"
        );
    }
}
