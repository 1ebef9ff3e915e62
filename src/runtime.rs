//! The plugin's own async runtime: created on first need (never while the
//! library loads), shut down and joined when the plugin is destroyed.

use parking_lot::Mutex;
use std::future::Future;
use std::io;
use std::time::Duration;
use tracing::instrument::WithSubscriber;
use tracing::Dispatch;

/// How long destroying the plugin waits for background work to stop.
pub(crate) const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

pub struct Runtime {
    dispatch: Dispatch,
    inner: Mutex<State>,
}

enum State {
    NotStarted,
    Running(tokio::runtime::Runtime),
    ShutDown,
}

impl Runtime {
    pub fn new(dispatch: Dispatch) -> Runtime {
        Runtime {
            dispatch,
            inner: Mutex::new(State::NotStarted),
        }
    }

    /// Runs `task` in the background under the plugin's log dispatcher.
    /// Fails when the runtime cannot start or has been shut down.
    pub fn spawn<F>(&self, task: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawner()?.spawn(task);
        Ok(())
    }

    /// A handle that background tasks keep to start more tasks (the
    /// wizard's finish starts the sync engine from the runtime). Starts the
    /// runtime when needed. It does not keep the runtime alive: after the
    /// shutdown, tasks it spawns are dropped at once.
    pub fn spawner(&self) -> io::Result<Spawner> {
        let mut state = self.inner.lock();
        if matches!(*state, State::NotStarted) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .max_blocking_threads(4)
                .thread_name("online-desktop")
                .enable_all()
                .build()?;
            *state = State::Running(runtime);
        }
        match &*state {
            State::Running(runtime) => Ok(Spawner {
                handle: runtime.handle().clone(),
                dispatch: self.dispatch.clone(),
            }),
            _ => Err(io::Error::other("the add-on is shutting down")),
        }
    }

    /// Cancels all background work and joins every runtime thread, waiting
    /// at most [`SHUTDOWN_DEADLINE`]. Returns false when the deadline
    /// passed with work still running.
    pub fn shut_down(&self) -> bool {
        let previous = std::mem::replace(&mut *self.inner.lock(), State::ShutDown);
        match previous {
            State::Running(runtime) => {
                let started = std::time::Instant::now();
                runtime.shutdown_timeout(SHUTDOWN_DEADLINE);
                started.elapsed() < SHUTDOWN_DEADLINE
            }
            _ => true,
        }
    }
}

/// Starts tasks on the instance's runtime from anywhere, under its log
/// dispatcher (see [`Runtime::spawner`]).
#[derive(Clone)]
pub struct Spawner {
    handle: tokio::runtime::Handle,
    dispatch: Dispatch,
}

impl Spawner {
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle
            .spawn(task.with_subscriber(self.dispatch.clone()));
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn spawned_work_runs_and_shutdown_cancels_the_rest() {
        let runtime = Runtime::new(Dispatch::none());
        let (tx, rx) = mpsc::channel();
        runtime.spawn(async move { tx.send(1).unwrap() }).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        runtime
            .spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await })
            .unwrap();
        assert!(runtime.shut_down());
        assert!(runtime.spawn(async {}).is_err());
    }
}
