//! A zone's entity slots for the binary `world.tick`: two bytes instead of a 36-character id.
//!
//! The table belongs to the zone, not to a connection, so every subscriber gets the same bytes
//! and a frame is encoded once. It tracks the zone's broadcast baseline: an entity is bound when
//! the frame that adds it is built and released when the frame that removes it is built, whether
//! or not any subscriber is on the binary wire, so a client that switches wire or resyncs finds
//! the bindings already there.
//!
//! Slots are handed out from a cursor that moves forward and wraps, so a freed slot is reused as
//! late as 65,536 slots allow. Each slot keeps a generation that advances (mod 256) every time it
//! is bound again, also after a release: a client running a lossy carrier can tell the entity
//! holding a slot now from the one that held it a moment ago. The binding itself travels on the
//! add record (which carries the id), so no mapping message exists.

use std::collections::HashMap;

/// Slots per zone: the wire's `u16`.
const SPACE: usize = 1 << 16;

/// The zone has 65,536 live entities: a capacity problem to report, never to wrap into a live
/// slot (that would silently rebind an entity on every client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all 65536 slots of the zone are bound")]
pub(crate) struct SlotError;

/// One zone's id ↔ slot table.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    by_id: HashMap<String, (u16, u8)>,
    /// Bound slots.
    used: HashMap<u16, ()>,
    /// The generation of every slot ever bound, kept after release so the next binding advances
    /// it. At most 65,536 entries.
    gens: HashMap<u16, u8>,
    next: u16,
}

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots::default()
    }

    /// The slot and generation of `id`, binding a free slot if it has none.
    pub(crate) fn bind(&mut self, id: &str) -> Result<(u16, u8), SlotError> {
        if let Some(s) = self.by_id.get(id) {
            return Ok(*s);
        }
        if self.used.len() >= SPACE {
            return Err(SlotError);
        }
        let mut slot = self.next;
        while self.used.contains_key(&slot) {
            slot = slot.wrapping_add(1);
        }
        self.next = slot.wrapping_add(1);
        // A fresh slot starts at generation 0; each rebinding advances it.
        let gen = self.gens.get(&slot).map_or(0, |g| g.wrapping_add(1));
        self.gens.insert(slot, gen);
        self.used.insert(slot, ());
        self.by_id.insert(id.to_owned(), (slot, gen));
        Ok((slot, gen))
    }

    /// The slot and generation bound to `id`.
    pub(crate) fn slot_of(&self, id: &str) -> Option<(u16, u8)> {
        self.by_id.get(id).copied()
    }

    /// Frees `id`'s slot, returning what it was (the removal record carries it).
    pub(crate) fn release(&mut self, id: &str) -> Option<(u16, u8)> {
        let s = self.by_id.remove(id)?;
        self.used.remove(&s.0);
        Some(s)
    }

    /// Live bindings (equals the zone's broadcast baseline size).
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_is_idempotent_and_release_advances_the_generation() {
        let mut s = Slots::new();
        assert!(s.is_empty());
        assert_eq!(s.bind("a"), Ok((0, 0)));
        assert_eq!(s.bind("b"), Ok((1, 0)));
        assert_eq!(s.bind("a"), Ok((0, 0)));
        assert_eq!(s.slot_of("b"), Some((1, 0)));
        assert_eq!(s.release("a"), Some((0, 0)));
        assert_eq!(s.release("a"), None);
        assert_eq!(s.slot_of("a"), None);
        // The cursor moves on: slot 0 is not reused while others are free.
        assert_eq!(s.bind("c"), Ok((2, 0)));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn wraps_to_freed_slots_with_a_new_generation_and_refuses_when_full() {
        let mut s = Slots::new();
        for i in 0..SPACE {
            s.bind(&i.to_string()).unwrap();
        }
        assert_eq!(s.bind("one too many"), Err(SlotError));
        s.release("7").unwrap();
        assert_eq!(s.bind("new"), Ok((7, 1)));
        assert_eq!(s.len(), SPACE);
        // No two live ids share a slot.
        let mut seen = std::collections::HashSet::new();
        assert!(s.by_id.values().all(|(slot, _)| seen.insert(*slot)));
    }

    #[test]
    fn generation_wraps_mod_256() {
        let mut s = Slots::new();
        s.next = 9;
        for round in 0..300u32 {
            let (slot, gen) = s.bind("x").unwrap();
            assert_eq!(slot, 9);
            assert_eq!(u32::from(gen), round % 256);
            s.release("x");
            s.next = 9;
        }
    }
}
