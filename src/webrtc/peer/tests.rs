use super::*;

#[test]
fn garbage_is_not_an_offer() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cert = crate::webrtc::crypto::certificate([7; 16]).unwrap();
    let e = Peer::answer("hello", &[addr], &[], &cert, Instant::now()).unwrap_err();
    assert!(matches!(e, WhepError::Sdp(_)), "{e:?}");
}
