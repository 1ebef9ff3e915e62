//! Events from background work to the host's UI thread.
//!
//! Background work never calls the host's UI callbacks: it queues an event
//! and asks the host to pump; the host calls the pump on its UI thread,
//! which hands the queued events over there.

use crate::host::Host;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Kinds of events (the ABI's `OD_EVENT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    PrerequisitesChanged,
    SyncState,
    SyncProgress,
    WizardChanged,
}

impl EventKind {
    pub fn number(self) -> u32 {
        match self {
            EventKind::PrerequisitesChanged => od_abi::OD_EVENT_PREREQUISITES_CHANGED,
            EventKind::SyncState => od_abi::OD_EVENT_SYNC_STATE,
            EventKind::SyncProgress => od_abi::OD_EVENT_SYNC_PROGRESS,
            EventKind::WizardChanged => od_abi::OD_EVENT_WIZARD_CHANGED,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// JSON details, when the kind has any.
    pub payload: Option<String>,
}

/// Queue shared between background tasks and the pump.
pub struct EventQueue {
    host: Host,
    queue: Mutex<VecDeque<Event>>,
}

impl EventQueue {
    pub fn new(host: Host) -> EventQueue {
        EventQueue {
            host,
            queue: Mutex::new(VecDeque::new()),
        }
    }

    /// Queues `event` and asks the host to pump. Identical events still
    /// waiting are merged, so a slow host gets one notification, not many.
    pub fn post(&self, event: Event) {
        {
            let mut queue = self.queue.lock();
            if !queue.contains(&event) {
                queue.push_back(event);
            }
        }
        self.host.request_pump();
    }

    /// Queues `event` in place of any waiting event of its kind (progress:
    /// only the newest matters) and asks the host to pump.
    pub fn post_latest(&self, event: Event) {
        {
            let mut queue = self.queue.lock();
            queue.retain(|e| e.kind != event.kind);
            queue.push_back(event);
        }
        self.host.request_pump();
    }

    /// Takes every queued event, oldest first.
    pub fn drain(&self) -> Vec<Event> {
        self.queue.lock().drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::testing::FakeHost;
    use std::sync::Arc;

    #[test]
    fn post_asks_for_a_pump_and_merges_duplicates() {
        let fake = Arc::new(FakeHost::default());
        let queue = EventQueue::new(Host::new(fake.clone()));
        let event = Event {
            kind: EventKind::PrerequisitesChanged,
            payload: None,
        };
        queue.post(event.clone());
        queue.post(event.clone());
        assert_eq!(fake.pump_requests(), 2);
        assert_eq!(queue.drain(), vec![event]);
        assert!(queue.drain().is_empty());
    }

    #[test]
    fn only_the_newest_progress_waits() {
        let fake = Arc::new(FakeHost::default());
        let queue = EventQueue::new(Host::new(fake.clone()));
        let progress = |n: u32| Event {
            kind: EventKind::SyncProgress,
            payload: Some(n.to_string()),
        };
        let state = Event {
            kind: EventKind::SyncState,
            payload: None,
        };
        queue.post_latest(progress(1));
        queue.post(state.clone());
        queue.post_latest(progress(2));
        assert_eq!(queue.drain(), vec![state, progress(2)]);
    }
}
