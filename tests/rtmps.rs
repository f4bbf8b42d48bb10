//! End-to-end RTMPS: the real binary publishing through nginx's `stream`
//! module with `ssl` (a test CA made here with the openssl CLI) to
//! nginx-rtmp, all on 127.0.0.1. A certificate for the wrong name or from
//! an unknown CA is refused with a clear message, and nothing reaches the
//! RTMP server.

mod common;

use std::time::Duration;

use common::tls::{TestCa, TlsProxy};
use common::*;

#[test]
fn rtmps_through_a_tls_proxy_records_the_stream_and_refuses_bad_certificates() {
    let dir = temp_dir("push-rtmps");
    let rtmp_port = free_port();
    let tls_port = free_port();
    let ca = TestCa::new(&dir.join("pki"), "good", "DNS:localhost");
    let mut nginx = Nginx::start(&dir.join("rtmp"), rtmp_port);
    let proxy = TlsProxy::start(&dir.join("tls"), tls_port, rtmp_port, &ca);
    let ca_path = ca.ca.display().to_string();

    // A wrong name: the certificate is for localhost, the URL says 127.0.0.1.
    let es = Edgestream::start(&[
        "--size",
        "320x240",
        "--push",
        &format!("rtmps://127.0.0.1:{tls_port}/live/wrongname?key=s3cret"),
        "--push-tls-ca",
        &ca_path,
    ]);
    let line = es.wait_lines("TLS with 127.0.0.1", 1, Duration::from_secs(20));
    let log = es.log_text();
    drop(es);
    assert!(line.is_some(), "no TLS error:\n{log}");
    assert!(
        log.contains(
            "TLS with 127.0.0.1: the server's certificate is not valid for the name 127.0.0.1"
        ),
        "{log}"
    );
    // An unknown CA: the system store does not know the test CA.
    let es = Edgestream::start(&[
        "--size",
        "320x240",
        "--push",
        &format!("rtmps://localhost:{tls_port}/live/unknownca?key=s3cret"),
    ]);
    let line = es.wait_lines("TLS with localhost", 1, Duration::from_secs(20));
    let log = es.log_text();
    drop(es);
    assert!(line.is_some(), "no TLS error:\n{log}");
    assert!(
        log.contains("TLS with localhost: the server's certificate is signed by an unknown CA"),
        "{log}"
    );
    assert!(log.contains("CAs from /etc/ssl/certs"), "{log}");
    // Neither reached the RTMP server: no publish, no key.
    let rtmp_log = nginx.error_log();
    assert!(!rtmp_log.contains("s3cret"), "{rtmp_log}");
    assert!(!rtmp_log.contains("publish"), "{rtmp_log}");
    assert!(
        !rtmp_log.contains("client connected"),
        "the RTMP server saw a connection:\n{rtmp_log}\n{}",
        proxy.error_log()
    );

    // The right name and the test CA: published and recorded.
    let frames = 300;
    let es = Edgestream::push_frames(
        frames,
        &format!("rtmps://localhost:{tls_port}/live/cam1?key=s3cret"),
        &["--push-tls-ca", &ca_path],
    );
    let name = format!("rtmps://localhost:{tls_port}/live/cam1?****");
    es.assert_publishing(&name, &[&|| nginx.error_log(), &|| proxy.error_log()]);
    let log = es.log.clone();
    let status = es.wait(Duration::from_secs(60));
    let log = log.lock().unwrap().join("\n");
    assert!(status.success(), "{status}\n{log}");
    assert!(!log.contains("WARN"), "{log}");
    nginx.check_finished("RTMPS recording", "cam1", "key=s3cret", frames);
    std::fs::remove_dir_all(dir).ok();
}
