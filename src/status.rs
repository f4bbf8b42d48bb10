//! The status LED and the privacy button, over embedded-hal 1.0 pin traits.
//!
//! What the LED shows is a pure function of the device's health and the time
//! since that state began ([`LedState::from_health`], [`lit`]); [`StatusLed`]
//! drives any [`OutputPin`] with it, touching the pin only when the level
//! changes. [`PrivacyButton`] debounces any [`InputPin`] and reports presses;
//! [`run`] polls both on a small thread and flips [`Health::toggle_privacy`].
//! The production pins (`linux_embedded_hal::CdevPin`) are built in `app`.
//!
//! | state | LED |
//! | --- | --- |
//! | starting (no frame yet) | fast flicker, 5 per second |
//! | streaming | steady on |
//! | streaming, a push target down | on, with a short dark blink every second |
//! | camera (source) fault | slow even blink, once a second |
//! | privacy pause | dark, with a short flash every 2 seconds |

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use embedded_hal::digital::{InputPin, OutputPin};

use crate::health::{Health, Snapshot, SourceState};

/// What the LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedState {
    Starting,
    Streaming,
    /// Streaming, but at least one push target is not publishing.
    PushDown,
    /// The source failed (camera unplugged or stalled) and is being retried.
    Fault,
    /// Capture is paused on purpose (the privacy button).
    Privacy,
}

impl LedState {
    /// The state to show for a health snapshot. The privacy switch wins (it
    /// is what the user just asked for), then a fault, then the rest.
    pub fn from_health(h: &Snapshot) -> Self {
        if h.paused() {
            return Self::Privacy;
        }
        match h.source {
            SourceState::Fault => Self::Fault,
            SourceState::Starting => Self::Starting,
            _ if h.push_down() => Self::PushDown,
            _ => Self::Streaming,
        }
    }

    /// The blink pattern: one cycle of (lit, milliseconds) steps, repeated.
    pub fn pattern(self) -> &'static [(bool, u32)] {
        match self {
            Self::Starting => &[(true, 100), (false, 100)],
            Self::Streaming => &[(true, 1000)],
            Self::PushDown => &[(true, 900), (false, 100)],
            Self::Fault => &[(true, 500), (false, 500)],
            Self::Privacy => &[(true, 100), (false, 1900)],
        }
    }
}

/// Whether the LED is lit `since` after entering `state`.
pub fn lit(state: LedState, since: Duration) -> bool {
    let steps = state.pattern();
    let cycle: u32 = steps.iter().map(|(_, ms)| ms).sum();
    let mut t = (since.as_millis() % u128::from(cycle)) as u32;
    for &(on, ms) in steps {
        if t < ms {
            return on;
        }
        t -= ms;
    }
    false
}

/// Drives an LED on an output pin.
pub struct StatusLed<P> {
    pin: P,
    active_low: bool,
    state: Option<(LedState, Instant)>,
    level: Option<bool>,
}

impl<P: OutputPin> StatusLed<P> {
    /// `active_low`: the LED lights when the pin is low (wired from 3.3 V).
    pub fn new(pin: P, active_low: bool) -> Self {
        Self {
            pin,
            active_low,
            state: None,
            level: None,
        }
    }

    /// Shows `state` at time `now`; a new state starts its pattern afresh.
    /// Writes the pin only when the LED has to change.
    pub fn show(&mut self, state: LedState, now: Instant) -> Result<(), P::Error> {
        let since = match self.state {
            Some((s, entered)) if s == state => now.saturating_duration_since(entered),
            _ => {
                self.state = Some((state, now));
                Duration::ZERO
            }
        };
        self.set(lit(state, since))
    }

    /// Turns the LED off (at shutdown).
    pub fn off(&mut self) -> Result<(), P::Error> {
        self.state = None;
        self.set(false)
    }

    fn set(&mut self, on: bool) -> Result<(), P::Error> {
        if self.level == Some(on) {
            return Ok(());
        }
        if on != self.active_low {
            self.pin.set_high()?;
        } else {
            self.pin.set_low()?;
        }
        self.level = Some(on);
        Ok(())
    }
}

/// Samples that must agree before the button counts as pressed or released.
/// At the [`POLL`] interval that is 60 ms: longer than contact bounce, far
/// shorter than a press.
pub const DEBOUNCE_SAMPLES: u8 = 3;

/// How often [`run`] samples the button and updates the LED.
pub const POLL: Duration = Duration::from_millis(20);

/// A debouncer: the state changes after `required` equal samples in a row.
#[derive(Debug, Clone)]
pub struct Debouncer {
    stable: bool,
    run: u8,
    required: u8,
}

impl Debouncer {
    pub fn new(initial: bool, required: u8) -> Self {
        Self {
            stable: initial,
            run: 0,
            required: required.max(1),
        }
    }

    /// Feeds one sample; returns the new state when it changes.
    pub fn sample(&mut self, value: bool) -> Option<bool> {
        if value == self.stable {
            self.run = 0;
            return None;
        }
        self.run += 1;
        if self.run < self.required {
            return None;
        }
        self.run = 0;
        self.stable = value;
        Some(value)
    }

    #[cfg(test)]
    pub fn state(&self) -> bool {
        self.stable
    }
}

/// A push button on an input pin.
pub struct PrivacyButton<P> {
    pin: P,
    active_low: bool,
    debouncer: Debouncer,
}

impl<P: InputPin> PrivacyButton<P> {
    /// `active_low`: pressing pulls the pin low (button to ground with a
    /// pull-up). A button held down at start counts only once released and
    /// pressed again.
    pub fn new(mut pin: P, active_low: bool) -> Result<Self, P::Error> {
        let pressed = pin.is_high()? != active_low;
        Ok(Self {
            pin,
            active_low,
            debouncer: Debouncer::new(pressed, DEBOUNCE_SAMPLES),
        })
    }

    /// Samples the pin; true once per debounced press.
    pub fn poll(&mut self) -> Result<bool, P::Error> {
        let pressed = self.pin.is_high()? != self.active_low;
        Ok(self.debouncer.sample(pressed) == Some(true))
    }
}

/// Runs the LED and the button until `stop` is set, then turns the LED off.
/// Pin errors are logged (once per kind of pin) and do not stop streaming.
pub fn run<L, B>(
    mut led: Option<StatusLed<L>>,
    mut button: Option<PrivacyButton<B>>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) where
    L: OutputPin,
    B: InputPin,
{
    let (mut led_failed, mut button_failed) = (false, false);
    while !stop.load(Ordering::Relaxed) {
        if let Some(b) = &mut button {
            match b.poll() {
                Ok(true) => {
                    let on = health.toggle_privacy();
                    log::info!(
                        "privacy button: {}",
                        if on {
                            "privacy pause on: capture stops, viewers stay connected"
                        } else {
                            "privacy pause off: capture resumes"
                        }
                    );
                }
                Ok(false) => {}
                Err(e) if !button_failed => {
                    button_failed = true;
                    log::warn!("privacy button: cannot read the pin: {e:?}");
                }
                Err(_) => {}
            }
        }
        if let Some(l) = &mut led {
            let state = LedState::from_health(&health.snapshot());
            if let Err(e) = l.show(state, Instant::now()) {
                if !led_failed {
                    led_failed = true;
                    log::warn!("status LED: cannot set the pin: {e:?}");
                }
            }
        }
        std::thread::sleep(POLL);
    }
    if let Some(l) = &mut led {
        let _ = l.off();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::digital::{ErrorType, PinState};
    use std::cell::RefCell;
    use std::convert::Infallible;
    use std::rc::Rc;

    /// A recording output pin: the levels written, in order.
    #[derive(Clone, Default)]
    struct Recorder(Rc<RefCell<Vec<PinState>>>);

    impl ErrorType for Recorder {
        type Error = Infallible;
    }

    impl OutputPin for Recorder {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.borrow_mut().push(PinState::Low);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.borrow_mut().push(PinState::High);
            Ok(())
        }
    }

    /// An input pin that replays a script of levels.
    struct Script(std::vec::IntoIter<bool>);

    impl ErrorType for Script {
        type Error = Infallible;
    }

    impl InputPin for Script {
        fn is_high(&mut self) -> Result<bool, Infallible> {
            Ok(self.0.next().unwrap_or(false))
        }
        fn is_low(&mut self) -> Result<bool, Infallible> {
            self.is_high().map(|h| !h)
        }
    }

    /// The LED's level every 50 ms over `ms` milliseconds, as a string of
    /// `#` (lit) and `.` (dark), read back from the pin writes.
    fn trace(state: LedState, ms: u64, active_low: bool) -> String {
        let rec = Recorder::default();
        let mut led = StatusLed::new(rec.clone(), active_low);
        let t0 = Instant::now();
        let mut out = String::new();
        for step in 0..ms / 50 {
            led.show(state, t0 + Duration::from_millis(step * 50))
                .unwrap();
            let high = *rec.0.borrow().last().unwrap() == PinState::High;
            out.push(if high != active_low { '#' } else { '.' });
        }
        out
    }

    #[test]
    fn each_state_has_its_own_pattern() {
        assert_eq!(trace(LedState::Starting, 1000, false), "##..".repeat(5));
        assert_eq!(trace(LedState::Streaming, 2000, false), "#".repeat(40));
        assert_eq!(
            trace(LedState::PushDown, 2000, false),
            format!("{}..", "#".repeat(18)).repeat(2)
        );
        assert_eq!(
            trace(LedState::Fault, 2000, false),
            format!("{}{}", "#".repeat(10), ".".repeat(10)).repeat(2)
        );
        assert_eq!(
            trace(LedState::Privacy, 4000, false),
            format!("##{}", ".".repeat(38)).repeat(2)
        );
        // All five differ over any 2 s window.
        let all = [
            LedState::Starting,
            LedState::Streaming,
            LedState::PushDown,
            LedState::Fault,
            LedState::Privacy,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(
                    trace(*a, 2000, false),
                    trace(*b, 2000, false),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn active_low_inverts_the_pin_not_the_pattern() {
        for state in [LedState::Starting, LedState::Fault, LedState::Privacy] {
            assert_eq!(trace(state, 2000, true), trace(state, 2000, false));
        }
        let rec = Recorder::default();
        let mut led = StatusLed::new(rec.clone(), true);
        led.show(LedState::Streaming, Instant::now()).unwrap();
        led.off().unwrap();
        assert_eq!(*rec.0.borrow(), vec![PinState::Low, PinState::High]);
    }

    #[test]
    fn pin_is_written_only_on_changes_and_a_new_state_restarts_its_pattern() {
        let rec = Recorder::default();
        let mut led = StatusLed::new(rec.clone(), false);
        let t0 = Instant::now();
        for ms in (0..1000).step_by(20) {
            led.show(LedState::Streaming, t0 + Duration::from_millis(ms))
                .unwrap();
        }
        assert_eq!(rec.0.borrow().len(), 1);
        // Privacy entered at 1000 ms: its flash comes at once, then dark.
        let t1 = t0 + Duration::from_millis(1000);
        led.show(LedState::Privacy, t1).unwrap();
        led.show(LedState::Privacy, t1 + Duration::from_millis(150))
            .unwrap();
        led.show(LedState::Privacy, t1 + Duration::from_millis(1900))
            .unwrap();
        led.show(LedState::Privacy, t1 + Duration::from_millis(2000))
            .unwrap();
        assert_eq!(
            *rec.0.borrow(),
            vec![PinState::High, PinState::Low, PinState::High]
        );
    }

    #[test]
    fn health_maps_to_states() {
        let h = Health::new();
        let s = || LedState::from_health(&h.snapshot());
        assert_eq!(s(), LedState::Starting);
        h.set_source(SourceState::Delivering, None);
        assert_eq!(s(), LedState::Streaming);
        let push = h.add_push("rtmp://server/live/cam");
        assert_eq!(s(), LedState::PushDown);
        push.set(true, "publishing");
        assert_eq!(s(), LedState::Streaming);
        h.set_source(SourceState::Fault, Some("camera gone".into()));
        assert_eq!(s(), LedState::Fault);
        h.toggle_privacy();
        assert_eq!(s(), LedState::Privacy);
        h.toggle_privacy();
        h.set_source(SourceState::Paused, None);
        assert_eq!(s(), LedState::Privacy);
    }

    #[test]
    fn debouncer_ignores_bounces() {
        let mut d = Debouncer::new(false, 3);
        let samples = [true, false, true, true, false, true, true, true, true];
        let changes: Vec<_> = samples.iter().map(|&v| d.sample(v)).collect();
        assert_eq!(
            changes,
            [None, None, None, None, None, None, None, Some(true), None]
        );
        assert!(d.state());
        assert_eq!(d.sample(false), None);
        assert_eq!(d.sample(false), None);
        assert_eq!(d.sample(false), Some(false));
    }

    #[test]
    fn button_reports_each_press_once() {
        // Active low: idle high, pressed low, with bounce on press and release.
        let levels = vec![
            true, true, false, true, false, false, false, false, false, true, false, true, true,
            true, true, false, false, false, true, true, true,
        ];
        let n = levels.len();
        let mut b = PrivacyButton::new(Script(levels.into_iter()), true).unwrap();
        let presses: usize = (1..n).filter(|_| b.poll().unwrap()).count();
        assert_eq!(presses, 2);
        // Held at start: not a press until released and pressed again.
        let levels = vec![
            true, true, true, true, false, false, false, true, true, true,
        ];
        let n = levels.len();
        let mut b = PrivacyButton::new(Script(levels.into_iter()), false).unwrap();
        let polls: Vec<bool> = (1..n).map(|_| b.poll().unwrap()).collect();
        assert_eq!(polls.iter().filter(|p| **p).count(), 1);
        assert!(polls[8], "{polls:?}");
    }

    #[test]
    fn run_toggles_privacy_and_turns_the_led_off_at_the_end() {
        let rec = Recorder::default();
        let health = Health::new();
        health.set_source(SourceState::Delivering, None);
        let stop = Arc::new(AtomicBool::new(false));
        // A press after 5 samples, held, so one toggle; then stop.
        let mut levels = vec![false; 5];
        levels.extend([true; 50]);
        let button = PrivacyButton::new(Script(levels.into_iter()), false).unwrap();
        let h = health.clone();
        let s = stop.clone();
        let rec2 = rec.clone();
        // Recorder is !Send (Rc), so run on this thread and stop from another.
        let stopper = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !h.privacy() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(100));
            s.store(true, Ordering::Relaxed);
        });
        run(
            Some(StatusLed::new(rec2, false)),
            Some(button),
            health.clone(),
            stop,
        );
        stopper.join().unwrap();
        assert!(health.privacy());
        let writes = rec.0.borrow();
        assert_eq!(writes.first(), Some(&PinState::High), "{writes:?}");
        assert_eq!(writes.last(), Some(&PinState::Low), "{writes:?}");
    }
}
