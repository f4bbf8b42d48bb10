//! The policy on virtual time: no clock, no sleeps.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs a camera that is never there from t=0 for `until`, sending the
/// slate as asked; returns the times of the open attempts and the slates.
fn absent_camera(p: &mut Policy, until: Duration) -> (Vec<Duration>, Vec<(Duration, bool)>) {
    let (mut opens, mut slates) = (Vec::new(), Vec::new());
    let mut now = Duration::ZERO;
    while now < until {
        match p.poll(now, false) {
            Action::Open => {
                opens.push(now);
                p.open_failed(now);
            }
            Action::Slate { reason, idr } => {
                assert_eq!(reason, SlateReason::Offline);
                slates.push((now, idr));
                p.slate_sent(now);
            }
            Action::Wait(d) => {
                assert!(d > Duration::ZERO, "a zero wait at {now:?} would spin");
                now += d;
            }
            other => panic!("{other:?} at {now:?}"),
        }
    }
    (opens, slates)
}

#[test]
fn a_missing_camera_is_retried_with_doubling_backoff_to_the_cap() {
    let mut p = Policy::new(Duration::ZERO, false, true);
    let (opens, slates) = absent_camera(&mut p, secs(60));
    let at: Vec<f64> = opens.iter().map(|t| t.as_secs_f64()).collect();
    // 0, +0.5, +1, +2, +4, +8, then every 10 s.
    assert_eq!(
        at,
        vec![0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 25.5, 35.5, 45.5, 55.5]
    );
    assert!(slates.is_empty(), "no slate unless asked for");
}

#[test]
fn the_slate_runs_at_two_fps_idr_first_while_the_camera_is_away() {
    let mut p = Policy::new(Duration::ZERO, false, true).with_slate(SLATE_INTERVAL);
    let (opens, slates) = absent_camera(&mut p, secs(10));
    assert_eq!(opens.len(), 5, "{opens:?}");
    assert_eq!(slates.len(), 20, "{slates:?}");
    assert_eq!(slates[0], (Duration::ZERO, true), "at once, as an IDR");
    assert!(slates[1..].iter().all(|&(_, idr)| !idr));
    for w in slates.windows(2) {
        assert_eq!(w[1].0 - w[0].0, SLATE_INTERVAL);
    }
}

#[test]
fn an_unplugged_camera_gets_the_slate_at_once_and_backoff_resets_after_a_good_run() {
    let mut p = Policy::new(Duration::ZERO, false, true).with_slate(SLATE_INTERVAL);
    assert_eq!(p.poll(ms(0), false), Action::Open);
    p.opened(ms(0));
    assert_eq!(p.poll(ms(10), false), Action::Read);
    p.delivered(ms(10));
    // Fails after 1 s: short run, backoff goes on doubling next time.
    assert_eq!(p.failed(secs(1)), ms(500));
    assert_eq!(
        p.poll(secs(1), false),
        Action::Slate {
            reason: SlateReason::Offline,
            idr: true
        }
    );
    p.slate_sent(secs(1));
    assert_eq!(p.poll(secs(1), false), Action::Wait(ms(500)));
    assert_eq!(p.poll(ms(1500), false), Action::Open);
    p.opened(ms(1500));
    assert_eq!(p.failed(ms(1600)), secs(1), "doubled: it ran only 0.1 s");
    assert_eq!(p.poll(ms(2600), false), Action::Open);
    p.opened(ms(2600));
    // A long good run: the next failure waits the minimum again.
    p.delivered(secs(20));
    assert_eq!(p.failed(secs(20)), RETRY_MIN);
    assert_eq!(
        p.poll(secs(20), false),
        Action::Slate {
            reason: SlateReason::Offline,
            idr: true
        },
        "a new outage starts with an IDR"
    );
}

#[test]
fn the_privacy_pause_closes_the_camera_shows_the_slate_and_reopens_at_once() {
    let mut p = Policy::new(Duration::ZERO, true, true).with_slate(SLATE_INTERVAL);
    p.opened(Duration::ZERO);
    assert_eq!(p.poll(ms(100), false), Action::Read);
    assert_eq!(p.poll(ms(200), true), Action::Close);
    assert!(p.paused());
    let privacy = |idr| Action::Slate {
        reason: SlateReason::Privacy,
        idr,
    };
    assert_eq!(p.poll(ms(200), true), privacy(true));
    p.slate_sent(ms(200));
    assert_eq!(p.poll(ms(300), true), Action::Wait(ms(400)));
    assert_eq!(p.poll(ms(700), true), privacy(false));
    p.slate_sent(ms(700));
    // A long pause: no reopen attempts meanwhile, whatever the backoff.
    for i in 0..100 {
        let t = ms(1200) + SLATE_INTERVAL * i;
        assert_eq!(p.poll(t, true), privacy(false), "at {t:?}");
        p.slate_sent(t);
    }
    // Off: opened at once, backoff from the start.
    assert_eq!(p.poll(secs(60), false), Action::Open);
    assert!(!p.paused());
    p.opened(secs(60));
    assert_eq!(p.poll(secs(60), false), Action::Read);
}

#[test]
fn privacy_during_an_outage_stops_the_retries_and_says_privacy() {
    let mut p = Policy::new(Duration::ZERO, false, true).with_slate(SLATE_INTERVAL);
    assert_eq!(p.poll(ms(0), false), Action::Open);
    assert_eq!(p.open_failed(ms(0)), ms(500));
    for _ in 0..3 {
        p.open_failed(ms(0));
    }
    // Paused while the camera is away: nothing to close, the card changes
    // (with an IDR), no open attempt until the pause ends.
    assert_eq!(
        p.poll(ms(10), true),
        Action::Slate {
            reason: SlateReason::Privacy,
            idr: true
        }
    );
    p.slate_sent(ms(10));
    assert_eq!(
        p.poll(secs(30), true),
        Action::Slate {
            reason: SlateReason::Privacy,
            idr: false
        }
    );
    p.slate_sent(secs(30));
    assert_eq!(p.poll(ms(30_100), false), Action::Open, "retried at once");
    assert_eq!(p.open_failed(ms(30_100)), RETRY_MIN, "backoff reset");
    assert_eq!(
        p.poll(ms(30_100), false),
        Action::Wait(ms(400)),
        "the slate keeps its pace"
    );
    assert_eq!(
        p.poll(ms(30_500), false),
        Action::Slate {
            reason: SlateReason::Offline,
            idr: false
        }
    );
}

#[test]
fn a_fixed_source_is_not_closed_for_privacy_only_paused() {
    let mut p = Policy::new(Duration::ZERO, true, false);
    assert_eq!(p.poll(ms(0), false), Action::Read);
    // Without a slate: waits, looking at the switch every interval.
    assert_eq!(p.poll(ms(10), true), Action::Wait(SLATE_INTERVAL));
    assert_eq!(p.poll(ms(20), false), Action::Open);
    p.opened(ms(20));
    assert_eq!(p.poll(ms(20), false), Action::Read);
}
