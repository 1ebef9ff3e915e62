//! Plugin handles: a slot table with generation numbers, so that a handle
//! that was freed (or never was ours) is recognised instead of followed.
//!
//! A handle is an integer dressed as a pointer: the low 16 bits hold the
//! slot index plus one, the rest a number from a counter that never repeats
//! within the process. A stale handle therefore never matches a newer one.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const INDEX_BITS: u32 = 16;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// At most this many plugin instances live at once.
pub(crate) const MAX_LIVE: usize = INDEX_MASK;

static NEXT_GENERATION: AtomicUsize = AtomicUsize::new(1);

/// Slots of live values. Empty slots are reused; when the table becomes
/// empty its memory is released, so loading and unloading the library
/// leaves nothing behind.
pub struct Table<T> {
    slots: Mutex<Vec<Slot<T>>>,
}

/// A used slot holds the handle's generation and the value.
type Slot<T> = Option<(usize, Arc<T>)>;

impl<T> Table<T> {
    pub const fn new() -> Table<T> {
        Table {
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Stores `value`; returns its handle, or None when the table is full.
    pub fn insert(&self, value: Arc<T>) -> Option<usize> {
        let mut slots = self.slots.lock();
        let index = match slots.iter().position(Option::is_none) {
            Some(free) => free,
            None if slots.len() < MAX_LIVE => {
                slots.push(None);
                slots.len() - 1
            }
            None => return None,
        };
        let generation =
            NEXT_GENERATION.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> INDEX_BITS);
        let generation = generation.max(1);
        slots[index] = Some((generation, value));
        Some((generation << INDEX_BITS) | (index + 1))
    }

    /// The live value behind `handle`.
    pub fn get(&self, handle: usize) -> Option<Arc<T>> {
        let (index, generation) = split(handle)?;
        match self.slots.lock().get(index) {
            Some(Some((live, value))) if *live == generation => Some(Arc::clone(value)),
            _ => None,
        }
    }

    /// Takes the value out; the handle is dead from now on.
    pub fn remove(&self, handle: usize) -> Option<Arc<T>> {
        let (index, generation) = split(handle)?;
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(index)?;
        match slot {
            Some((live, _)) if *live == generation => {
                let taken = slot.take().map(|(_, value)| value);
                while matches!(slots.last(), Some(None)) {
                    slots.pop();
                }
                if slots.is_empty() {
                    *slots = Vec::new();
                }
                taken
            }
            _ => None,
        }
    }
}

fn split(handle: usize) -> Option<(usize, usize)> {
    let index = (handle & INDEX_MASK).checked_sub(1)?;
    Some((index, handle >> INDEX_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_and_foreign_handles_are_refused() {
        let table = Table::new();
        let a = table.insert(Arc::new("a")).unwrap();
        let b = table.insert(Arc::new("b")).unwrap();
        assert_eq!(*table.get(a).unwrap(), "a");
        assert_eq!(*table.remove(a).unwrap(), "a");
        assert!(table.get(a).is_none());
        assert!(table.remove(a).is_none());
        let c = table.insert(Arc::new("c")).unwrap();
        assert_ne!(a, c, "the reused slot gets a new handle");
        assert!(table.get(a).is_none());
        assert_eq!(*table.get(b).unwrap(), "b");
        for foreign in [0usize, 1, 0xdead_beef, usize::MAX, b ^ (1 << 20)] {
            assert!(table.get(foreign).is_none(), "{foreign:#x}");
        }
    }

    #[test]
    fn the_table_releases_its_memory_when_empty() {
        let table = Table::new();
        let handles: Vec<_> = (0..10)
            .map(|i| table.insert(Arc::new(i)).unwrap())
            .collect();
        for h in handles {
            table.remove(h);
        }
        assert_eq!(table.slots.lock().capacity(), 0);
    }
}
