//! Spotting a Raspberry Pi CSI camera in `--list-devices`: its V4L2 nodes
//! (the Unicam or RP1 CFE receiver giving raw Bayer, the ISP nodes) are not
//! a camera edgestream can take directly; libcamera (rpicam-vid) makes
//! pictures from them, so the hint points at the `*-csi` board profiles.

use super::DeviceInfo;

/// Drivers of the Pi's CSI-2 receivers and ISPs: `unicam` (Pi 0-4),
/// `bcm2835-isp` (the VideoCore ISP, Pi 0-4), `rp1-cfe` and `pispbe` (Pi 5).
pub const CSI_DRIVERS: [&str; 4] = ["unicam", "bcm2835-isp", "rp1-cfe", "pispbe"];

/// The hint for the devices listed, if one of them is a CSI receiver or ISP.
pub fn csi_hint(devices: &[DeviceInfo]) -> Option<String> {
    let found = devices.iter().find(|d| {
        let driver = d.driver.trim().to_ascii_lowercase();
        CSI_DRIVERS.contains(&driver.as_str())
    })?;
    Some(format!(
        "{} (driver {}) looks like a CSI camera; use a *-csi profile \
         (board/rpi-zero-csi.toml, rpi3-csi.toml, rpi4-csi.toml): edgestream reads it through \
         rpicam-vid (`rpicam-hello --list-cameras` names the sensor), not as a V4L2 source",
        found.path.display(),
        found.driver
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dev(path: &str, driver: &str, card: &str) -> DeviceInfo {
        DeviceInfo {
            path: PathBuf::from(path),
            card: card.into(),
            driver: driver.into(),
            bus_info: "platform:fe801000.csi".into(),
            capture: true,
            mplane: false,
        }
    }

    #[test]
    fn a_unicam_or_isp_node_gets_the_csi_hint() {
        let pi4 = [
            dev("/dev/video0", "unicam", "unicam"),
            dev("/dev/video10", "bcm2835-codec", "bcm2835-codec-decode"),
            dev("/dev/video13", "bcm2835-isp", "bcm2835-isp"),
        ];
        let hint = csi_hint(&pi4).unwrap();
        assert!(hint.starts_with(
            "/dev/video0 (driver unicam) looks like a CSI camera; use a *-csi profile"
        ));
        let pi5 = [
            dev("/dev/video0", "rp1-cfe", "rp1-cfe"),
            dev("/dev/video20", "pispbe", "pispbe"),
        ];
        assert!(csi_hint(&pi5).unwrap().contains("driver rp1-cfe"));
        assert!(csi_hint(&pi4[1..]).unwrap().contains("bcm2835-isp"));
    }

    #[test]
    fn usb_cameras_and_the_codec_alone_get_no_hint() {
        let usb = [
            dev("/dev/video0", "uvcvideo", "HD Webcam C525"),
            dev("/dev/video10", "bcm2835-codec", "bcm2835-codec-decode"),
            dev("/dev/video2", "vivid", "vivid"),
        ];
        assert_eq!(csi_hint(&usb), None);
        assert_eq!(csi_hint(&[]), None);
    }
}
