//! The command line: flags, config files, exit codes, logs, and that the
//! README documents every flag and config key.

mod common;

use std::time::Duration;

use common::*;

/// Every long flag `--help` lists.
fn help_flags() -> Vec<String> {
    let o = run_bin(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut flags: Vec<String> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches([',', '.', ')', ':']).to_string())
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn help_and_version() {
    let flags = help_flags();
    for f in [
        "--config",
        "--source",
        "--size",
        "--fps",
        "--bitrate",
        "--keyint",
        "--threads",
        "--rtsp",
        "--rtsp-path",
        "--push",
        "--frames",
        "--pace",
        "--print-config",
        "--help",
        "--version",
    ] {
        assert!(flags.iter().any(|x| x == f), "--help lacks {f}: {flags:?}");
    }
    let o = run_bin(&["--version"]);
    assert!(o.status.success());
    assert!(output_text(&o).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn readme_documents_every_flag_and_key() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let printed = run_bin(&["--print-config"]);
    assert!(printed.status.success());
    for flag in help_flags() {
        if flag == "--help" || flag == "--version" {
            continue;
        }
        assert!(
            readme.contains(&format!("`{flag}")),
            "README does not document {flag}"
        );
    }
    // Every key the effective config prints is a documented config key.
    for line in String::from_utf8_lossy(&printed.stdout).lines() {
        if let Some((key, _)) = line.split_once(" = ") {
            assert!(
                readme.contains(&format!("`{key}`")),
                "README does not document the key {key}"
            );
        }
    }
}

#[test]
fn usage_and_config_errors_exit_2_and_name_the_problem() {
    let o = run_bin(&["--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run_bin(&["--fps", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        output_text(&o).contains("--fps: 0 is out of range; use 1 to 120"),
        "{}",
        output_text(&o)
    );

    let dir = temp_dir("cli-config");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "size = \"640x480\"\nbitrate = 5\n").unwrap();
    let o = run_bin(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = output_text(&o);
    assert!(
        t.contains("`bitrate` in") && t.contains("16 to 100000"),
        "{t}"
    );

    std::fs::write(&cfg, "framerate = 30\n").unwrap();
    let o = run_bin(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        output_text(&o).contains("unknown field `framerate`"),
        "{}",
        output_text(&o)
    );

    let o = run_bin(&["--config", "/nonexistent/edgestream.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        output_text(&o).contains("cannot read"),
        "{}",
        output_text(&o)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn print_config_is_a_loadable_config() {
    let dir = temp_dir("cli-print");
    let o = run_bin(&[
        "--size",
        "320x240",
        "--fps",
        "15",
        "--push",
        "rtmp://127.0.0.1/live/cam",
        "--print-config",
    ]);
    assert!(o.status.success());
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(printed.contains("size = \"320x240\""), "{printed}");
    let cfg = dir.join("printed.toml");
    std::fs::write(&cfg, &printed).unwrap();
    let again = run_bin(&["--config", cfg.to_str().unwrap(), "--print-config"]);
    assert!(again.status.success(), "{}", output_text(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), printed);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn frames_limit_and_file_source_stop_cleanly() {
    let o = run_bin(&[
        "--rtsp", "off", "--size", "160x120", "--pace", "asap", "--frames", "45",
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("encoded 45 frames"),
        "{}",
        output_text(&o)
    );

    let dir = temp_dir("cli-y4m");
    let y4m = dir.join("in.y4m");
    let st = tool("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=176x144:rate=10",
            "-frames:v",
            "20",
        ])
        .args(["-pix_fmt", "yuv420p", "-y"])
        .arg(&y4m)
        .status()
        .unwrap();
    assert!(st.success());
    let o = run_bin(&[
        "--rtsp",
        "off",
        "--source",
        y4m.to_str().unwrap(),
        "--pace",
        "asap",
    ]);
    assert!(o.status.success(), "{}", output_text(&o));
    let t = output_text(&o);
    assert!(t.contains("the source ended after 20 frames"), "{t}");
    assert!(t.contains("176x144 at 10 fps"), "{t}");

    let o = run_bin(&[
        "--rtsp",
        "off",
        "--source",
        dir.join("missing.y4m").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a missing file is a runtime failure"
    );
    assert!(
        output_text(&o).contains("cannot open"),
        "{}",
        output_text(&o)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn signals_stop_with_exit_0_and_busy_port_is_exit_1() {
    let es = Edgestream::start(&["--size", "160x120"]);
    let addr = es.addr();
    // A second instance on the same port fails at start.
    let o = run_bin(&["--rtsp", &addr, "--frames", "10"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains(&format!("cannot serve RTSP on {addr}")),
        "{}",
        output_text(&o)
    );
    // SIGINT, like Ctrl-C.
    signal(es.pid(), libc::SIGINT);
    let status = es.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn under_systemd_log_lines_carry_syslog_priorities() {
    let es = Edgestream::start_with_env(&["--size", "160x120"], &[("JOURNAL_STREAM", "8:1234")]);
    let line = es
        .log_text()
        .lines()
        .find(|l| l.contains("streaming"))
        .unwrap()
        .to_string();
    assert!(line.starts_with("<6>edgestream "), "{line}");
    assert!(es.stop().success());
}
