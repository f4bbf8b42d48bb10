use super::*;

#[test]
fn garbage_is_not_an_offer() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let e = Peer::answer("hello", &[addr], Instant::now()).unwrap_err();
    assert!(matches!(e, WhepError::Sdp(_)), "{e:?}");
}
