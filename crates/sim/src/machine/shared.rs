//! Copy-on-write components: how forked machines share what neither has written.
//!
//! The model checker keeps every state of a breadth-first level as a whole [`super::Machine`],
//! and a transition writes the CPUs (their clocks) and the task it runs, rarely more tasks, and
//! never the constants. SPIN's `-DCOLLAPSE` stores
//! each process's part of the state vector once and the vector as indices into those tables;
//! here a machine holds its CPUs, tasks and constant parts as [`Shared`] components, a copy
//! shares them, and the first write through a copy gives it its own. Copying a machine costs a
//! few reference counts instead of kilobytes, and a stored state costs what its transitions
//! wrote.
//!
//! A simulation never copies its machine: every component is uniquely owned, and a write costs
//! one uncontended check of the count.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

/// A component shared between machine copies until one of them writes it.
///
/// Reads go through [`Deref`]; a write through [`DerefMut`] first gives this copy its own
/// component if another copy still holds it ([`Arc::make_mut`]). No weak reference is ever
/// made (the type has no way to make one), so a count of one means this copy is the only
/// holder.
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    /// Wraps a component.
    pub fn new(v: T) -> Shared<T> {
        Shared(Arc::new(v))
    }

    /// This copy's own component, for a write through a shared reference (an atomic, as a
    /// remote CPU writes another's state word or `rcu_urgent_qs`): [`DerefMut`] is taken only
    /// for `&mut` access, so such a write must own the component first or it would change
    /// every copy. The model checker's explorer asserts in debug builds that expanding a state
    /// leaves it unchanged.
    #[inline(always)]
    pub fn own(&mut self) -> &mut T
    where
        T: Clone,
    {
        // The simulator's path: the only holder. `Arc::make_mut` would pay a locked
        // compare-and-swap on every write (about a quarter of the simulator's speed); a load
        // does.
        if Arc::strong_count(&self.0) == 1 {
            // Pairs with the Release decrement of a copy dropped on another thread (as
            // `make_mut`'s Acquire does), so its reads happen before our writes.
            fence(Ordering::Acquire);
            // SAFETY: no `Weak` is ever made, and the count is 1: the `Arc` we borrow mutably
            // is the only way to the value, and no other thread can make another (that would
            // need this one). The pointer comes from the allocation, so it may write.
            return unsafe { &mut *Arc::as_ptr(&self.0).cast_mut() };
        }
        Arc::make_mut(&mut self.0)
    }

    /// The component's address: two copies hold the same component if and only if their
    /// addresses are equal (while both are alive).
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as *const u8 as usize
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.own()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::Shared;

    #[test]
    fn a_copy_shares_until_one_side_writes() {
        let mut a = Shared::new(vec![1, 2, 3]);
        let b = a.clone();
        assert!(std::ptr::eq(&*a, &*b), "a copy shares the component");
        assert_eq!(a.addr(), b.addr());
        a.push(4);
        assert_eq!(*b, vec![1, 2, 3], "the write did not reach the other copy");
        assert_eq!(*a, vec![1, 2, 3, 4]);
        assert!(!std::ptr::eq(&*a, &*b), "the writer got its own");
        assert_ne!(a.addr(), b.addr());
    }

    #[test]
    fn the_only_holder_writes_in_place() {
        let mut a = Shared::new([0u64; 4]);
        let before: *const [u64; 4] = &*a;
        a[2] = 7;
        a.own()[3] = 9;
        assert!(
            std::ptr::eq(before, &*a),
            "no copy when nobody else holds it"
        );
        assert_eq!(*a, [0, 0, 7, 9]);
        // A copy that is dropped leaves the holder alone again.
        drop(a.clone());
        a[0] = 1;
        assert!(std::ptr::eq(before, &*a));
    }

    #[test]
    fn own_detaches_before_a_write_through_a_shared_reference() {
        use std::sync::atomic::{AtomicU32, Ordering};
        struct Word(AtomicU32);
        impl Clone for Word {
            fn clone(&self) -> Word {
                Word(AtomicU32::new(self.0.load(Ordering::Relaxed)))
            }
        }
        let mut a = Shared::new(Word(AtomicU32::new(1)));
        let b = a.clone();
        let get = |w: &Word| w.0.load(Ordering::Relaxed);
        a.own().0.store(2, Ordering::Relaxed);
        assert_eq!(get(&b), 1, "the other copy keeps its value");
        assert_eq!(get(&a), 2);
    }

    #[test]
    fn copies_move_between_threads() {
        let a = Shared::new(vec![5u8; 64]);
        let b = a.clone();
        let mut c = std::thread::spawn(move || {
            let mut b = b;
            b[0] = 6;
            b
        })
        .join()
        .expect("thread");
        assert_eq!((a[0], c[0]), (5, 6));
        c[1] = 7;
        assert_eq!(a[1], 5);
    }
}
