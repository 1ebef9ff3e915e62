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

/// Threads of this process that are still alive.
#[cfg(target_os = "linux")]
fn thread_count() -> Option<usize> {
    live_threads().map(|names| names.len())
}

/// The names of this process's threads that are still alive. A thread that
/// is exiting is left out: `join` returns as soon as the thread has left
/// its code, while the kernel may list it under /proc/self/task a little
/// longer (long enough, on a loaded machine, to look like a thread left
/// behind).
#[cfg(target_os = "linux")]
fn live_threads() -> Option<Vec<String>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let live = tasks.flatten().filter_map(|task| {
        // A task gone since the listing has no stat any more.
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        let name = stat.split_once(" (")?.1.rsplit_once(") ")?.0;
        (!is_exiting(&stat)).then(|| name.to_owned())
    });
    Some(live.collect())
}

/// Whether a /proc `stat` line is that of a task on its way out: the
/// kernel sets PF_EXITING in its flags (the 9th field) when it starts
/// exiting, before `join` can return.
#[cfg(any(target_os = "linux", test))]
fn is_exiting(stat: &str) -> bool {
    const PF_EXITING: u64 = 0x4;
    // The name, in parentheses, may itself contain spaces and parentheses.
    let Some((_, fields)) = stat.rsplit_once(") ") else {
        return false;
    };
    // After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    fields
        .split_whitespace()
        .nth(6)
        .and_then(|flags| flags.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exiting_tasks_are_recognised_by_their_flags() {
        // Flags 0x400040 (a running thread) and 0x40404c (PF_EXITING set).
        let running = "4242 (online-desktop) S 1 4242 4242 0 -1 4194368 95 0 0 0 1 0 0 0 20 0 3 0";
        let exiting = "4243 (online-desktop) X 1 4242 4242 0 -1 4210764 95 0 0 0 1 0 0 0 20 0 3 0";
        assert!(!is_exiting(running));
        assert!(is_exiting(exiting));
        // A name with ") " in it does not shift the fields.
        assert!(is_exiting("7 (a) b (c) R 1 1 1 0 -1 4 0 0"));
        assert!(!is_exiting("7 (a) b (c) R 1 1 1 0 -1 64 0 0"));
        assert!(!is_exiting("not a stat line"));
    }

    /// A joined thread is never counted as left behind, however busy the
    /// machine is. (Counting every entry of /proc/self/task did, about once
    /// in a thousand joins, and so failed the lifecycle check now and then.)
    #[cfg(target_os = "linux")]
    #[test]
    fn joined_threads_are_not_counted() {
        for _ in 0..5_000 {
            std::thread::Builder::new()
                .name("lc-probe".into())
                .spawn(|| std::hint::black_box(1))
                .unwrap()
                .join()
                .unwrap();
            let live = live_threads().expect("threads can be listed");
            assert!(!live.iter().any(|name| name == "lc-probe"), "{live:?}");
        }
        assert!(!live_threads().unwrap().is_empty());
    }
}
