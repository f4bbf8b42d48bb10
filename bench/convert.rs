//! Micro-benchmark of the YUYV -> I420 conversion (the one pass a packed
//! camera format costs), against a plain memcpy of the same input bytes run
//! in the same process, so the figures say how close to memory speed it is
//! on this machine whatever its load.
//!
//! Run: `bash bench/convert.sh` (or `cargo run --release --example bench-convert`).
//! Target: at least 1 GB/s of input.

use std::hint::black_box;
use std::time::{Duration, Instant};

use edgestream::convert::{I420Buffer, packed_to_i420};
use edgestream::media::PixelFormat;

/// Runs `f` repeatedly for about `budget`; returns the best time of one run
/// out of several rounds (the least disturbed by other processes).
fn best_of(budget: Duration, mut f: impl FnMut()) -> Duration {
    // Warm up (page faults, caches, CPU clock).
    for _ in 0..20 {
        f();
    }
    let mut best = Duration::MAX;
    let end = Instant::now() + budget;
    while Instant::now() < end {
        let t = Instant::now();
        for _ in 0..10 {
            f();
        }
        best = best.min(t.elapsed() / 10);
    }
    best
}

fn gbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    );
    println!("YUYV -> I420, best of {} ms per case", budget.as_millis());
    println!(
        "{:>10} {:>10} {:>12} {:>12} {:>12} {:>8}",
        "size", "input", "convert", "convert", "memcpy", "ratio"
    );
    let mut worst = f64::MAX;
    for &(w, h) in &[(640usize, 480usize), (1280, 720)] {
        let stride = 2 * w;
        let mut src = vec![0u8; stride * h];
        fastrand::Rng::with_seed(9).fill(&mut src);
        let mut out = I420Buffer::new();
        let convert = best_of(budget, || {
            packed_to_i420(
                PixelFormat::Yuyv,
                w as u32,
                h as u32,
                stride,
                black_box(&src),
                &mut out,
            )
            .unwrap();
            black_box(out.planar().planes[0][0]);
        });
        let mut dst = vec![0u8; src.len()];
        let copy = best_of(budget, || {
            dst.copy_from_slice(black_box(&src));
            black_box(dst[dst.len() / 2]);
        });
        let (c, m) = (gbps(src.len(), convert), gbps(src.len(), copy));
        worst = worst.min(c);
        println!(
            "{:>10} {:>8} KB {:>9.1} us {:>7.2} GB/s {:>7.2} GB/s {:>7.2}x",
            format!("{w}x{h}"),
            src.len() / 1024,
            convert.as_secs_f64() * 1e6,
            c,
            m,
            c / m
        );
    }
    println!(
        "slowest: {worst:.2} GB/s of input (target 1 GB/s): {}",
        if worst >= 1.0 { "ok" } else { "BELOW TARGET" }
    );
}
