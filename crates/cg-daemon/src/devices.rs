//! What the slots of one device share: how many may claim jobs now, and how many jobs run.
//!
//! A device (a GPU, or the CPU) starts with all its slots claiming. A job that runs out of memory
//! while other jobs run on the same device lowers that number by one (never below one): packing
//! was too tight. After [`RAISE_AFTER`] jobs in a row complete on it, one more slot may claim
//! again (up to all of them), so a long-running daemon recovers from a tight moment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::gpu::Slot;

/// Completions in a row on a device after which one more of its slots may claim again.
pub(crate) const RAISE_AFTER: usize = 10;

struct Device {
    slots: usize,
    limit: AtomicUsize,
    running: AtomicUsize,
    completions: AtomicUsize,
}

/// The devices of a set of slots, by their name.
pub(crate) struct Devices(HashMap<String, Device>);

impl Devices {
    pub(crate) fn new(slots: &[Slot]) -> Self {
        let mut map: HashMap<String, Device> = HashMap::new();
        for slot in slots {
            let device = map.entry(slot.to_string()).or_insert_with(|| Device {
                slots: 0,
                limit: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
                completions: AtomicUsize::new(0),
            });
            device.slots += 1;
            device.limit.fetch_add(1, Ordering::SeqCst);
        }
        Devices(map)
    }

    fn get(&self, slot: &Slot) -> &Device {
        &self.0[&slot.to_string()]
    }

    /// Whether the slot of this `rank` (0 for the first slot of its device) may claim now.
    pub(crate) fn may_claim(&self, slot: &Slot, rank: usize) -> bool {
        rank < self.get(slot).limit.load(Ordering::SeqCst)
    }

    /// Counts a job running on the slot's device until the guard drops.
    pub(crate) fn running(&self, slot: &Slot) -> Running<'_> {
        let device = self.get(slot);
        device.running.fetch_add(1, Ordering::SeqCst);
        Running(device)
    }

    /// Jobs running on the slot's device now.
    pub(crate) fn running_on(&self, slot: &Slot) -> usize {
        self.get(slot).running.load(Ordering::SeqCst)
    }

    /// A job ran out of memory beside others: one slot fewer claims. The new limit, when it
    /// changed.
    pub(crate) fn lower(&self, slot: &Slot) -> Option<usize> {
        let device = self.get(slot);
        device.completions.store(0, Ordering::SeqCst);
        device
            .limit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 1).then(|| n - 1)
            })
            .ok()
            .map(|was| was - 1)
    }

    /// A job ran out of memory alone: the completions in a row start again.
    pub(crate) fn out_of_memory_alone(&self, slot: &Slot) {
        self.get(slot).completions.store(0, Ordering::SeqCst);
    }

    /// A job completed: after [`RAISE_AFTER`] in a row below the full count, one more slot
    /// claims. The new limit, when it changed.
    pub(crate) fn completed(&self, slot: &Slot) -> Option<usize> {
        let device = self.get(slot);
        if device.limit.load(Ordering::SeqCst) >= device.slots {
            return None;
        }
        if device.completions.fetch_add(1, Ordering::SeqCst) + 1 < RAISE_AFTER {
            return None;
        }
        device.completions.store(0, Ordering::SeqCst);
        device
            .limit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < device.slots).then_some(n + 1)
            })
            .ok()
            .map(|was| was + 1)
    }
}

/// A job counted as running on a device.
pub(crate) struct Running<'a>(&'a Device);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{gpu_slots, parse_visible_devices};

    #[test]
    fn limits_fall_with_crowded_out_of_memory_and_rise_after_completions() {
        let mut slots = gpu_slots(&parse_visible_devices("0,1"), 3);
        slots.push(Slot::Cpu);
        let d = Devices::new(&slots);
        let gpu0 = &slots[0];
        let gpu1 = &slots[3];
        assert!((0..3).all(|r| d.may_claim(gpu0, r)) && !d.may_claim(gpu0, 3));
        assert!(d.may_claim(&Slot::Cpu, 0) && !d.may_claim(&Slot::Cpu, 1));

        assert_eq!(d.lower(gpu0), Some(2));
        assert_eq!(d.lower(gpu0), Some(1));
        assert_eq!(d.lower(gpu0), None, "never below one");
        assert!(d.may_claim(gpu0, 0) && !d.may_claim(gpu0, 1));
        assert!(d.may_claim(gpu1, 2), "other GPUs keep their slots");

        for _ in 1..RAISE_AFTER {
            assert_eq!(d.completed(gpu0), None);
        }
        assert_eq!(d.completed(gpu0), Some(2));
        d.out_of_memory_alone(gpu0);
        for _ in 1..RAISE_AFTER {
            assert_eq!(d.completed(gpu0), None);
        }
        assert_eq!(d.completed(gpu0), Some(3));
        assert_eq!(d.completed(gpu0), None, "never above the slots");
        assert!(d.may_claim(gpu0, 2));
    }

    #[test]
    fn running_jobs_are_counted_per_device() {
        let slots = gpu_slots(&parse_visible_devices("0,1"), 2);
        let d = Devices::new(&slots);
        let a = d.running(&slots[0]);
        let b = d.running(&slots[1]);
        let _c = d.running(&slots[2]);
        assert_eq!((d.running_on(&slots[0]), d.running_on(&slots[2])), (2, 1));
        drop(a);
        drop(b);
        assert_eq!(d.running_on(&slots[0]), 0);
    }
}
