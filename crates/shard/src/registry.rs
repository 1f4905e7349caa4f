//! The one piece of connection state all shards share: how many WebSocket connections are open
//! (for `SERVER_WEBSOCKET_MAX_CONN`) and which identifiers, `(id, group)`, they belong to (one
//! live connection per identifier, as Raccoon's connection table).
//!
//! Touched twice per connection, at admission and at release, never per batch. [`Registry::admit`]
//! checks the limit first, then the identifier (so a duplicate arriving when the server is full
//! is refused as "full", as in Raccoon), and returns an [`Admission`] that releases both when it
//! is released or dropped. An anonymous connection (`SERVER_WEBSOCKET_CONN_ID_ANONYMOUS`) takes a
//! slot under a name the registry gives it ([`Registry::anonymous_name`]) and is not listed: no
//! other connection can have its name.
//!
//! # Structure, and what else was weighed
//! * The limit is one [`AtomicUsize`]: a compare-and-swap loop that never lets the count pass the
//!   limit. A connection whose identifier then turns out to be taken gives its slot back at once;
//!   in that instant a concurrent newcomer may be refused as "full" although the table ends up
//!   below the limit. Raccoon's single lock has no such window; it is microseconds wide here and
//!   errs on the side of refusing.
//! * The identifiers are a `papaya::HashSet`: inserts and removals are atomic operations on the
//!   shared table, with no lock to wait for except in the rare moment the table grows (papaya
//!   resizes incrementally: a writer copies a small chunk of the old table and goes on, and only
//!   waits if it needs an entry another thread is copying that instant). The table starts with
//!   room for [`PRESIZED_IDENTIFIERS`] identifiers and doubles as connections arrive: 30,000
//!   connections grow it five times. It used to be presized for 65,536 (about 590 KB of slots):
//!   random inserts touched most of its pages, so 1,000 connections paid half a KiB each for it
//!   (perf-results/2026-12-01-issue14.md). The keys are the full strings, hashed with std's
//!   seeded SipHash, because clients choose them.
//! * Rejected: giving each identifier an owner shard (by hash) and asking it by message. A
//!   connect would wait for a round trip through another shard's inbox, behind its acks, and a
//!   release would be a message too, so an immediate reconnect could be judged before its
//!   predecessor's release arrived. A `std::sync::Mutex<HashSet>` is ruled out on shards.
//!
//! Lives on: one per process, created by [`crate::start()`]; every shard holds an `Arc`.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use thiserror::Error;

/// The identifier table starts with room for this many entries (about 9 KB of slots); beyond,
/// it grows as connections arrive.
pub(crate) const PRESIZED_IDENTIFIERS: usize = 1 << 10;

/// 32 random bits, from the keys std draws for each [`RandomState`](std::hash::RandomState) (no generator is needed for
/// a name that only has to differ between runs).
fn random_u32() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() as u32
}

/// Who a connection belongs to: Raccoon's `Identifier{ID, Group}`, printed `[group] id`.
///
/// Crosses threads (Send + Sync).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Identifier {
    /// The connection group (the group header's value, or the configured default).
    pub(crate) group: Box<str>,
    /// The id header's value; empty when the header is missing.
    pub(crate) id: Box<str>,
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.group, self.id)
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum RegistryError {
    /// `SERVER_WEBSOCKET_MAX_CONN` connections are open.
    #[error("max connection reached: {open} of {max} connections open")]
    Full {
        /// Connections open when this one was refused.
        open: usize,
        /// The limit.
        max: usize,
    },
    /// Another connection with the same identifier is open.
    #[error("duplicated connection: {identifier}")]
    Duplicate {
        /// The identifier in use.
        identifier: Identifier,
    },
}

impl RegistryError {
    /// The `reason` tag of `user_connection_failure_total`, as Raccoon's.
    pub(crate) fn as_label(&self) -> &'static str {
        match self {
            RegistryError::Full { .. } => "serverlimit",
            RegistryError::Duplicate { .. } => "exists",
        }
    }
}

/// Open connections and their identifiers, across all shards.
///
/// Crosses threads (Send + Sync).
pub(crate) struct Registry {
    max: usize,
    open: AtomicUsize,
    identifiers: papaya::HashSet<Identifier>,
    /// Names handed to anonymous connections: `anon-<nonce>-<n>`, `nonce` chosen per process
    /// so that names of one run are not those of the last.
    anonymous_nonce: u32,
    anonymous_next: AtomicU64,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("max", &self.max).field("open", &self.open()).finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry admitting at most `max_conn` connections at a time.
    pub(crate) fn new(max_conn: usize) -> Self {
        Registry {
            max: max_conn,
            open: AtomicUsize::new(0),
            identifiers: papaya::HashSet::with_capacity(max_conn.min(PRESIZED_IDENTIFIERS)),
            anonymous_nonce: random_u32(),
            anonymous_next: AtomicU64::new(0),
        }
    }

    /// A name no other anonymous connection of this process has had.
    pub(crate) fn anonymous_name(&self) -> String {
        let n = self.anonymous_next.fetch_add(1, Ordering::Relaxed);
        format!("anon-{:08x}-{n}", self.anonymous_nonce)
    }

    /// Connections admitted and not yet released.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Admits a connection of `(id, group)`: refused when the limit is reached, else when the
    /// identifier is in use. Never waits for another shard.
    pub(crate) fn admit(self: &Arc<Self>, id: &str, group: &str) -> Result<Admission, RegistryError> {
        self.take_slot()?;
        let identifier = Identifier { group: group.into(), id: id.into() };
        if !self.identifiers.pin().insert(identifier.clone()) {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(RegistryError::Duplicate { identifier });
        }
        Ok(Admission { registry: Arc::clone(self), identifier, listed: true, released: Cell::new(false) })
    }

    /// Admits an anonymous connection (named by [`Registry::anonymous_name`]): it counts against
    /// the limit, and no other connection can duplicate it, so its identifier is not listed.
    pub(crate) fn admit_anonymous(self: &Arc<Self>, id: &str, group: &str) -> Result<Admission, RegistryError> {
        self.take_slot()?;
        let identifier = Identifier { group: group.into(), id: id.into() };
        Ok(Admission { registry: Arc::clone(self), identifier, listed: false, released: Cell::new(false) })
    }

    /// One of the `max` slots, or `Full`.
    fn take_slot(&self) -> Result<(), RegistryError> {
        let mut open = self.open.load(Ordering::Acquire);
        loop {
            if open >= self.max {
                return Err(RegistryError::Full { open, max: self.max });
            }
            match self.open.compare_exchange_weak(open, open + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => open = now,
            }
        }
    }
}

/// One admitted connection's slot and identifier. [`Admission::release`] (or dropping it) gives
/// both back; releasing twice is harmless.
///
/// Lives on: the shard that admitted it (Send, not Sync).
pub(crate) struct Admission {
    registry: Arc<Registry>,
    identifier: Identifier,
    /// In the identifier set (not an anonymous connection).
    listed: bool,
    released: Cell<bool>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("identifier", &self.identifier)
            .field("released", &self.released.get())
            .finish()
    }
}

impl Admission {
    /// Frees the identifier and the slot, so that a reconnect is admitted at once.
    pub(crate) fn release(&self) {
        if self.released.replace(true) {
            return;
        }
        if self.listed {
            let removed = self.registry.identifiers.pin().remove(&self.identifier);
            debug_assert!(removed, "an admitted identifier is in the table until released");
        }
        self.registry.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Arc<Registry> {
        Arc::new(Registry::new(max))
    }

    #[test]
    fn duplicate_identifier_is_refused_and_released_on_drop() {
        let reg = registry(10);
        let first = reg.admit("1234", "--default--").unwrap();
        assert_eq!(first.identifier.to_string(), "[--default--] 1234");
        let err = reg.admit("1234", "--default--").unwrap_err();
        assert_eq!(err.to_string(), "duplicated connection: [--default--] 1234");
        assert_eq!(err.as_label(), "exists");
        assert_eq!(reg.open(), 1, "a refused duplicate holds no slot");
        drop(first);
        assert_eq!(reg.open(), 0);
        let again = reg.admit("1234", "--default--").unwrap();
        again.release();
        again.release();
        assert_eq!(reg.open(), 0, "releasing twice gives back one slot");
        drop(again);
        assert_eq!(reg.open(), 0);
    }

    #[test]
    fn limit_is_checked_before_the_identifier() {
        let reg = registry(1);
        let _a = reg.admit("a", "g").unwrap();
        assert_eq!(reg.admit("b", "g").unwrap_err(), RegistryError::Full { open: 1, max: 1 });
        // A duplicate of a connected identifier, with the table full, is refused as full.
        let err = reg.admit("a", "g").unwrap_err();
        assert!(matches!(err, RegistryError::Full { .. }), "{err:?}");
        assert_eq!(err.as_label(), "serverlimit");
    }

    #[test]
    fn same_id_in_different_groups_and_the_empty_id() {
        let reg = registry(10);
        let _viewer = reg.admit("1234", "viewer").unwrap();
        let _editor = reg.admit("1234", "editor").unwrap();
        let _anonymous = reg.admit("", "--default--").unwrap();
        let err = reg.admit("", "--default--").unwrap_err();
        assert_eq!(err.to_string(), "duplicated connection: [--default--] ");
        let _other_group = reg.admit("", "viewer").unwrap();
        assert_eq!(reg.open(), 4);
    }

    #[test]
    fn anonymous_connections_count_but_never_collide() {
        let reg = registry(3);
        let names: Vec<String> = (0..3).map(|_| reg.anonymous_name()).collect();
        assert!(names[0].starts_with("anon-") && names[0] != names[1] && names[1] != names[2], "{names:?}");
        let a = reg.admit_anonymous(&names[0], "--default--").unwrap();
        let _b = reg.admit_anonymous(&names[1], "--default--").unwrap();
        let _empty = reg.admit("", "--default--").unwrap();
        assert_eq!(reg.open(), 3, "anonymous connections count against the limit");
        assert!(matches!(reg.admit_anonymous(&names[2], "--default--"), Err(RegistryError::Full { .. })));
        assert_eq!(reg.identifiers.pin().len(), 1, "only the named connection is listed");
        drop(a);
        assert_eq!(reg.open(), 2);
        assert_eq!(reg.identifiers.pin().len(), 1);
    }

    #[test]
    fn group_and_id_do_not_run_together() {
        let reg = registry(10);
        let _a = reg.admit("b c", "a").unwrap();
        let _b = reg.admit("c", "a b").unwrap();
    }

    #[test]
    fn concurrent_admissions_never_pass_the_limit_or_share_an_identifier() {
        use std::sync::atomic::AtomicBool;
        const THREADS: usize = 8;
        const ROUNDS: usize = 2_000;
        const IDS: usize = 8;
        const MAX: usize = 5;
        let reg = registry(MAX);
        // Held by some thread right now, per identifier, and in total.
        let held: Vec<AtomicBool> = (0..IDS).map(|_| AtomicBool::new(false)).collect();
        let holding = AtomicUsize::new(0);
        let admitted = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (reg, held, holding, admitted) = (Arc::clone(&reg), &held, &holding, &admitted);
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        let i = (t * 3 + round) % IDS;
                        let Ok(admission) = reg.admit(&i.to_string(), "g") else { continue };
                        admitted.fetch_add(1, Ordering::Relaxed);
                        assert!(!held[i].swap(true, Ordering::AcqRel), "identifier {i} admitted twice");
                        let now = holding.fetch_add(1, Ordering::AcqRel) + 1;
                        assert!(now <= MAX, "{now} connections admitted, limit {MAX}");
                        std::hint::spin_loop();
                        holding.fetch_sub(1, Ordering::AcqRel);
                        held[i].store(false, Ordering::Release);
                        drop(admission);
                    }
                });
            }
        });
        assert!(admitted.load(Ordering::Relaxed) > 0);
        assert_eq!(reg.open(), 0, "every admission was released");
        assert_eq!(reg.identifiers.pin().len(), 0);
        let _all_free: Vec<_> = (0..MAX).map(|i| reg.admit(&i.to_string(), "g").unwrap()).collect();
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a test thread, not a shard
    fn admissions_move_between_threads() {
        let reg = registry(2);
        let held = reg.admit("x", "g").unwrap();
        std::thread::spawn(move || drop(held)).join().unwrap();
        assert_eq!(reg.open(), 0);
        assert!(reg.admit("x", "g").is_ok());
    }
}
