//! What the slots of one device share: its limit (how many jobs may run on it at once, and so
//! which of its slots may claim), and the jobs running or being claimed there.
//!
//! A device (a GPU, or the CPU) starts with the limit at its slot count. A job that runs out of
//! memory while other jobs run on the same device lowers the limit by one (never below one):
//! packing was too tight. Slots of a higher rank than the limit claim nothing, and no slot claims
//! while the device runs as many jobs as the limit (jobs started under a higher limit included).
//! After [`RAISE_AFTER`] jobs in a row complete on it, the limit rises by one (up to the slot
//! count), so a long-running daemon recovers from a tight moment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::gpu::Slot;

/// Completions in a row on a device after which one more of its slots may claim again.
pub(crate) const RAISE_AFTER: usize = 10;

struct Device {
    slots: usize,
    limit: AtomicUsize,
    /// Places taken: jobs running and claims under way.
    reserved: AtomicUsize,
    /// Jobs whose runner has started.
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
                reserved: AtomicUsize::new(0),
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

    /// A place for one more job on the slot's device, if the slot of this `rank` (0 for the first
    /// slot of its device) may claim now: its rank and the places taken there are both below the
    /// limit. Held until the guard drops (take it before claiming, so that two slots cannot both
    /// pass the limit); [`Reservation::start`] counts its job as running.
    pub(crate) fn reserve(&self, slot: &Slot, rank: usize) -> Option<Reservation<'_>> {
        let device = self.get(slot);
        let limit = device.limit.load(Ordering::SeqCst);
        if rank >= limit {
            return None;
        }
        device
            .reserved
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Reservation {
                device,
                started: false,
            })
    }

    /// Whether the slot of this `rank` is above its device's limit (it claims nothing).
    pub(crate) fn parked(&self, slot: &Slot, rank: usize) -> bool {
        rank >= self.get(slot).limit.load(Ordering::SeqCst)
    }

    /// Jobs running on the slot's device now.
    pub(crate) fn running_on(&self, slot: &Slot) -> usize {
        self.get(slot).running.load(Ordering::SeqCst)
    }

    /// Jobs running on all the devices together.
    pub(crate) fn running(&self) -> usize {
        self.0
            .values()
            .map(|d| d.running.load(Ordering::SeqCst))
            .sum()
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
        // Only the completion that wraps the count raises, however many arrive at once.
        let wrapped = device
            .completions
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(if n + 1 >= RAISE_AFTER { 0 } else { n + 1 })
            })
            .is_ok_and(|was| was + 1 >= RAISE_AFTER);
        if !wrapped {
            return None;
        }
        device
            .limit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < device.slots).then_some(n + 1)
            })
            .ok()
            .map(|was| was + 1)
    }
}

/// A place on a device, taken by [`Devices::reserve`].
pub(crate) struct Reservation<'a> {
    device: &'a Device,
    started: bool,
}

impl Reservation<'_> {
    /// Its job's runner started: it counts as running until the place is dropped.
    pub(crate) fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.device.running.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.started {
            self.device.running.fetch_sub(1, Ordering::SeqCst);
        }
        self.device.reserved.fetch_sub(1, Ordering::SeqCst);
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
        let may = |slot: &Slot, rank: usize| d.reserve(slot, rank).is_some();
        assert!((0..3).all(|r| may(gpu0, r)) && !may(gpu0, 3));
        assert!(may(&Slot::Cpu, 0) && !may(&Slot::Cpu, 1));

        assert_eq!(d.lower(gpu0), Some(2));
        assert_eq!(d.lower(gpu0), Some(1));
        assert_eq!(d.lower(gpu0), None, "never below one");
        assert!(may(gpu0, 0) && !may(gpu0, 1));
        assert!(d.parked(gpu0, 1) && !d.parked(gpu0, 0));
        assert!(may(gpu1, 2), "other GPUs keep their slots");

        for _ in 1..RAISE_AFTER {
            assert_eq!(d.completed(gpu0), None);
        }
        assert_eq!(d.completed(gpu0), Some(2));
        for _ in 0..3 {
            assert_eq!(d.completed(gpu0), None);
        }
        d.out_of_memory_alone(gpu0);
        for _ in 1..RAISE_AFTER {
            assert_eq!(d.completed(gpu0), None, "the run restarted at the failure");
        }
        assert_eq!(d.completed(gpu0), Some(3));
        assert_eq!(d.completed(gpu0), None, "never above the slots");
        assert!(may(gpu0, 2));
    }

    #[test]
    fn a_lowered_limit_counts_jobs_still_running_on_parked_slots() {
        let slots = gpu_slots(&parse_visible_devices("0"), 2);
        let d = Devices::new(&slots);
        // Rank 1 runs a long job; rank 0's job ran out of memory beside it.
        let mut long = d.reserve(&slots[1], 1).expect("room for two");
        long.start();
        assert_eq!(d.lower(&slots[0]), Some(1));
        assert!(
            d.reserve(&slots[0], 0).is_none(),
            "the GPU is full at one job"
        );
        drop(long);
        let next = d
            .reserve(&slots[0], 0)
            .expect("room once the long job ended");
        assert!(d.reserve(&slots[1], 1).is_none() && d.reserve(&slots[0], 0).is_none());
        drop(next);
    }

    #[test]
    fn reservations_never_pass_the_limit() {
        let slots = gpu_slots(&parse_visible_devices("0"), 3);
        let d = Devices::new(&slots);
        let mut held: Vec<_> = (0..3).filter_map(|r| d.reserve(&slots[r], r)).collect();
        assert_eq!(
            (held.len(), d.running_on(&slots[0])),
            (3, 0),
            "claims, not jobs yet"
        );
        held[1].start();
        held[1].start();
        assert_eq!(d.running_on(&slots[0]), 1);
        drop(held);
        assert_eq!(d.running_on(&slots[0]), 0);
        assert_eq!(d.lower(&slots[0]), Some(2));
        let a = d.reserve(&slots[2], 2);
        assert!(a.is_none(), "rank 2 is parked");
        let b = d.reserve(&slots[0], 0).unwrap();
        let c = d.reserve(&slots[1], 1).unwrap();
        assert!(d.reserve(&slots[0], 0).is_none());
        drop((b, c));
        assert_eq!(d.running_on(&slots[0]), 0);
    }
}
