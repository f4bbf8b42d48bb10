//! The status LED and the privacy button: their thread and their GPIO lines
//! (character device, through linux-embedded-hal).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{GpioError, GpioErrorKind};
use crate::config::{Config, GpioLine};
use crate::health::Health;
use crate::status::{PrivacyButton, StatusLed};

/// The status LED and privacy button thread (see [`crate::status`]); stops
/// and turns the LED off when dropped.
pub(super) struct StatusThread {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatusThread {
    /// Opens the configured pins and starts the thread; `None` if there are
    /// no pins to drive. A pin that cannot be opened is logged and left out:
    /// the LED and button are extras, streaming goes on without them.
    pub(super) fn start(config: &Config, health: Arc<Health>) -> Option<Self> {
        let led = config.led.as_ref().and_then(|g| {
            open_gpio(g, true, "status LED")
                .map(|pin| StatusLed::new(pin, g.active_low))
                .inspect_err(|e| log::warn!("{e}; running without it"))
                .ok()
        });
        let button = config.button.as_ref().and_then(|g| {
            open_gpio(g, false, "privacy button")
                .and_then(|pin| {
                    PrivacyButton::new(pin, g.active_low).map_err(|e| GpioError {
                        what: "privacy button",
                        line: g.clone(),
                        kind: GpioErrorKind::Pin(e),
                    })
                })
                .inspect_err(|e| log::warn!("{e}; running without it"))
                .ok()
        });
        if led.is_none() && button.is_none() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("status".into())
            .spawn(move || crate::status::run(led, button, health, s))
            .inspect_err(|e| log::warn!("status LED: cannot start its thread: {e}"))
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StatusThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::warn!("status LED: its thread panicked");
            }
        }
    }
}

/// Requests a GPIO line through the character device, as an output (the
/// LED, initially dark) or an input (the button). The line is requested
/// without the kernel's active-low flag: [`crate::status`] applies
/// `active-low` itself, since `CdevPin` writes physical levels.
fn open_gpio(
    g: &GpioLine,
    output: bool,
    what: &'static str,
) -> Result<linux_embedded_hal::CdevPin, GpioError> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let error = |kind| GpioError {
        what,
        line: g.clone(),
        kind,
    };
    let fail = |e| error(GpioErrorKind::Cdev(e));
    let mut chip = Chip::new(&g.chip).map_err(fail)?;
    if g.line >= chip.num_lines() {
        return Err(error(GpioErrorKind::NoSuchLine {
            chip: chip.name().to_string(),
            lines: chip.num_lines(),
        }));
    }
    let line = chip.get_line(g.line).map_err(fail)?;
    let handle = if output {
        line.request(
            LineRequestFlags::OUTPUT,
            u8::from(g.active_low),
            "edgestream",
        )
    } else {
        line.request(LineRequestFlags::INPUT, 0, "edgestream")
    }
    .map_err(fail)?;
    linux_embedded_hal::CdevPin::new(handle).map_err(fail)
}
