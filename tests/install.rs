//! The install path: board/install.sh into a DESTDIR, and the installed
//! systemd unit checked by the real systemd-analyze (verify, and the
//! security exposure the README quotes).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn install(destdir: &Path, profile: &Path) -> Output {
    tool("sh")
        .arg(Path::new(ROOT).join("board/install.sh"))
        .arg("--destdir")
        .arg(destdir)
        .arg(BIN)
        .arg(profile)
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn board(name: &str) -> PathBuf {
    Path::new(ROOT).join("board").join(name)
}

/// Installs into a fresh DESTDIR with the host's systemd units beside ours,
/// so systemd-analyze can resolve the dependencies (sysinit.target, ...).
fn installed_root(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let o = install(&dir, &board("rpi-zero.toml"));
    assert!(o.status.success(), "{}", output_text(&o));
    let units = dir.join("usr/lib/systemd");
    std::fs::create_dir_all(&units).unwrap();
    let st = tool("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(&units)
        .status()
        .unwrap();
    assert!(st.success(), "cannot copy the host's systemd units");
    dir
}

#[test]
fn installs_binary_unit_and_profile_and_keeps_an_edited_config() {
    let dir = temp_dir("install-files");
    let o = install(&dir, &board("rpi-zero.toml"));
    assert!(o.status.success(), "{}", output_text(&o));
    let bin = dir.join("usr/local/bin/edgestream");
    let unit = dir.join("etc/systemd/system/edgestream.service");
    let cfg = dir.join("etc/edgestream/edgestream.toml");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(mode(&cfg), 0o644);
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(BIN).unwrap());
    assert_eq!(
        std::fs::read(&unit).unwrap(),
        std::fs::read(Path::new(ROOT).join("systemd/edgestream.service")).unwrap()
    );
    assert_eq!(
        std::fs::read(&cfg).unwrap(),
        std::fs::read(board("rpi-zero.toml")).unwrap()
    );

    // Installing again over an edited config keeps the edits.
    std::fs::write(&cfg, "source = \"/dev/video1\"\n").unwrap();
    let o = install(&dir, &board("rpi4.toml"));
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        "source = \"/dev/video1\"\n"
    );
    assert_eq!(
        std::fs::read(dir.join("etc/edgestream/edgestream.toml.new")).unwrap(),
        std::fs::read(board("rpi4.toml")).unwrap()
    );
    assert!(output_text(&o).contains("kept your"), "{}", output_text(&o));

    // A profile the binary rejects installs nothing.
    let bad_dir = temp_dir("install-bad");
    let bad = bad_dir.join("bad.toml");
    std::fs::write(&bad, "fps = 500\n").unwrap();
    let target = bad_dir.join("root");
    let o = install(&target, &bad);
    assert!(!o.status.success());
    assert!(output_text(&o).contains("1 to 120"), "{}", output_text(&o));
    assert!(!target.join("usr/local/bin/edgestream").exists());
    std::fs::remove_dir_all(dir).ok();
    std::fs::remove_dir_all(bad_dir).ok();
}

#[test]
fn systemd_analyze_verify_is_clean() {
    let dir = installed_root("install-verify");
    // ExecReload= runs /bin/kill (procps, on every Debian and Raspberry Pi
    // OS system), which the bare install root lacks.
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/kill", dir.join("bin/kill")).unwrap();
    let o = tool("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", dir.display()))
        .arg("edgestream.service")
        .output()
        .unwrap();
    assert!(
        o.status.success() && output_text(&o).trim().is_empty(),
        "systemd-analyze verify: {}",
        output_text(&o)
    );

    // The check does catch a broken unit.
    let unit = dir.join("etc/systemd/system/edgestream.service");
    let mut broken = std::fs::read_to_string(&unit).unwrap();
    broken = broken.replace("WatchdogSec=", "WatchdogSecs=");
    std::fs::write(&unit, broken).unwrap();
    let o = tool("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", dir.display()))
        .arg("edgestream.service")
        .output()
        .unwrap();
    assert!(
        output_text(&o).contains("Unknown key"),
        "a misspelt key went unnoticed: {}",
        output_text(&o)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn security_exposure_is_at_most_2_5_and_the_readme_says_so() {
    let dir = installed_root("install-security");
    // --threshold is on systemd's 0-100 scale: 25 is the 2.5 shown.
    let o = tool("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=25", "--no-pager"])
        .arg(format!("--root={}", dir.display()))
        .arg("edgestream.service")
        .output()
        .unwrap();
    let t = output_text(&o);
    let figure = t
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for edgestream.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("no exposure figure in: {t}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let value: f64 = figure.parse().unwrap();
    assert!(
        o.status.success() && value <= 2.5,
        "exposure {value} > 2.5:\n{t}"
    );
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level {figure} OK")),
        "README does not quote the measured exposure level {figure}"
    );
    std::fs::remove_dir_all(dir).ok();
}
