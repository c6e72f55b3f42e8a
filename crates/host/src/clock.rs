//! `sched_clock()` for host threads: x86's `native_sched_clock()` shape, a raw `rdtsc` scaled to
//! nanoseconds by a multiply and shift (`cycles_2_ns()`), calibrated once against
//! `CLOCK_MONOTONIC`. On other architectures it is `CLOCK_MONOTONIC` itself (`Instant`).

use std::sync::OnceLock;
use std::time::Instant;

/// The cyc2ns scale: `ns = (cycles * mult) >> SHIFT`, as `struct cyc2ns_data`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// `cyc2ns_mul` (x86_64 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    mult: u64,
    /// The origin for `Instant`-based clocks (non-x86_64 only).
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    base: Instant,
}

/// `CYC2NS_SCALE_FACTOR`.
const SHIFT: u32 = 10;

impl Clock {
    /// The process-wide clock (calibrated on first use: about 5 ms of busy waiting).
    pub fn get() -> Clock {
        static CLOCK: OnceLock<Clock> = OnceLock::new();
        *CLOCK.get_or_init(Clock::calibrate)
    }

    #[cfg(target_arch = "x86_64")]
    fn calibrate() -> Clock {
        let base = Instant::now();
        let c0 = rdtsc();
        // Calibration, not synchronization: measure TSC cycles over a few ms of monotonic time.
        while base.elapsed() < std::time::Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        let (c1, ns) = (rdtsc(), base.elapsed().as_nanos() as u64);
        let cycles = (c1 - c0).max(1);
        Clock {
            mult: ((ns as u128) << SHIFT).div_ceil(cycles as u128) as u64,
            base,
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn calibrate() -> Clock {
        Clock {
            mult: 0,
            base: Instant::now(),
        }
    }

    /// `sched_clock()`: nanoseconds (since an arbitrary origin), one TSC read and a multiply.
    #[inline(always)]
    pub fn sched_clock(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            ((rdtsc() as u128 * self.mult as u128) >> SHIFT) as u64
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.base.elapsed().as_nanos() as u64
        }
    }
}

/// `rdtsc()` (unordered, as `native_sched_clock()` uses it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; it is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}
