//! Loading and unloading the plugin many times in one process, as a host
//! that restarts its add-ons would: every cycle loads the library, creates
//! an instance, runs the licence check and the prerequisites (which starts
//! the plugin's background threads), destroys the instance and unloads the
//! library. Afterwards no plugin thread may be left and memory must not
//! have grown.

use crate::plugin::{Instance, Library, Settings};
use std::path::Path;
use std::time::Duration;

/// What the cycles left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub cycles: u32,
    /// Threads of this process before the first cycle and after the last
    /// (None where the platform does not tell).
    pub threads_before: Option<usize>,
    pub threads_after: Option<usize>,
    /// Resident memory in KiB after the warm-up cycles and after the last.
    pub rss_after_warmup_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
}

/// Cycles run before memory is first measured: the first loads fill
/// allocator arenas and caches that later cycles reuse.
pub const WARMUP_CYCLES: u32 = 10;

/// Memory growth beyond this over the measured cycles counts as a leak.
pub const MAX_GROWTH_KIB: u64 = 4 * 1024;

impl Report {
    pub fn threads_left(&self) -> bool {
        matches!((self.threads_before, self.threads_after), (Some(b), Some(a)) if a > b)
    }

    pub fn growth_kib(&self) -> Option<i64> {
        Some(self.rss_after_kib? as i64 - self.rss_after_warmup_kib? as i64)
    }

    pub fn memory_grew(&self) -> bool {
        self.growth_kib().is_some_and(|g| g > MAX_GROWTH_KIB as i64)
    }

    pub fn passed(&self) -> bool {
        !self.threads_left() && !self.memory_grew()
    }
}

/// Runs `cycles` load/create/use/destroy/unload cycles. `settings` makes
/// the settings of each instance (a fresh host state per cycle).
pub fn run(
    path: &Path,
    cycles: u32,
    mut settings: impl FnMut() -> crate::error::Result<Settings>,
    mut progress: impl FnMut(u32),
) -> crate::error::Result<Report> {
    let threads_before = thread_count();
    let mut rss_after_warmup_kib = None;
    for cycle in 1..=cycles {
        let library = Library::load(path)?;
        {
            let instance = Instance::create(&library, settings()?)?;
            instance.licence()?;
            instance.prerequisites_settled(true, Duration::from_secs(20))?;
        }
        drop(library);
        if cycle == WARMUP_CYCLES.min(cycles) {
            rss_after_warmup_kib = resident_kib();
        }
        progress(cycle);
    }
    Ok(Report {
        cycles,
        threads_before,
        threads_after: thread_count(),
        rss_after_warmup_kib,
        rss_after_kib: resident_kib(),
    })
}

#[cfg(target_os = "linux")]
fn thread_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

#[cfg(not(target_os = "linux"))]
fn thread_count() -> Option<usize> {
    None
}

#[cfg(target_os = "linux")]
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn resident_kib() -> Option<u64> {
    None
}
