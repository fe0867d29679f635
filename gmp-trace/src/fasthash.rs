//! The hash maps of the per-event hot path (model and Perfetto writer), keyed by goids, tids,
//! P ids, code addresses and interned names: SipHash's DoS resistance buys nothing there and
//! costs a tenth of the daemon's time, so they use rustc-hash's FxHash. Ps and threads, looked
//! up several times per event, skip even that: [`ByP`] has a slot per P id, [`ByTid`]
//! remembers the last thread found (together 5% of a Perfetto replay, measured).
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub type FastSet<K> = rustc_hash::FxHashSet<K>;

/// A map keyed by P id. Ps are numbered 0..GOMAXPROCS, so a slot per id takes no hashing: a
/// P is looked up several times per scheduling event. Ids past [`ByP::DENSE`] (not a real
/// GOMAXPROCS, but a P id read from a torn struct could be anything) go to a hash map, so a
/// wild id cannot make the slots grow.
#[derive(Debug, Clone)]
pub struct ByP<V> {
    slots: Vec<Option<V>>,
    wide: FastMap<i32, V>,
    len: usize,
}

impl<V> Default for ByP<V> {
    fn default() -> Self {
        ByP {
            slots: Vec::new(),
            wide: FastMap::default(),
            len: 0,
        }
    }
}

impl<V> ByP<V> {
    /// Ids below this have a slot.
    pub const DENSE: i32 = 4096;

    fn slot(p: i32) -> Option<usize> {
        (0..Self::DENSE).contains(&p).then_some(p as usize)
    }

    #[inline]
    pub fn get(&self, p: &i32) -> Option<&V> {
        match Self::slot(*p) {
            Some(i) => self.slots.get(i)?.as_ref(),
            None => self.wide.get(p),
        }
    }

    #[inline]
    pub fn get_mut(&mut self, p: &i32) -> Option<&mut V> {
        match Self::slot(*p) {
            Some(i) => self.slots.get_mut(i)?.as_mut(),
            None => self.wide.get_mut(p),
        }
    }

    #[inline]
    pub fn contains_key(&self, p: &i32) -> bool {
        self.get(p).is_some()
    }

    /// The value for `p`, made by `make` if there is none.
    #[inline]
    pub fn get_or_insert_with(&mut self, p: i32, make: impl FnOnce() -> V) -> &mut V {
        match Self::slot(p) {
            Some(i) => {
                if i >= self.slots.len() {
                    self.slots.resize_with(i + 1, || None);
                }
                let s = &mut self.slots[i];
                if s.is_none() {
                    self.len += 1;
                }
                s.get_or_insert_with(make)
            }
            None => self.wide.entry(p).or_insert_with(|| {
                self.len += 1;
                make()
            }),
        }
    }

    pub fn insert(&mut self, p: i32, v: V) {
        let old = match Self::slot(p) {
            Some(i) => {
                if i >= self.slots.len() {
                    self.slots.resize_with(i + 1, || None);
                }
                self.slots[i].replace(v)
            }
            None => self.wide.insert(p, v),
        };
        if old.is_none() {
            self.len += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// (id, value) pairs: slots in id order, then the wide ids in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &V)> {
        let dense =
            (self.slots.iter().enumerate()).filter_map(|(i, s)| s.as_ref().map(|v| (i as i32, v)));
        dense.chain(self.wide.iter().map(|(&p, v)| (p, v)))
    }

    pub fn keys(&self) -> impl Iterator<Item = i32> + '_ {
        self.iter().map(|(p, _)| p)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        (self.slots.iter_mut().filter_map(Option::as_mut)).chain(self.wide.values_mut())
    }
}

/// A map keyed by thread id, for the threads of one process: never shrinks (an M is never
/// forgotten) and is looked up several times per event, mostly for the thread of the event
/// before. So the values sit in a Vec in the order first seen, with a hash index and a memo
/// of the last slot found: a run of lookups of one thread takes no hashing.
#[derive(Debug, Clone)]
pub struct ByTid<V> {
    entries: Vec<(u32, V)>,
    index: FastMap<u32, usize>,
    last: std::cell::Cell<usize>,
}

impl<V> Default for ByTid<V> {
    fn default() -> Self {
        ByTid {
            entries: Vec::new(),
            index: FastMap::default(),
            last: std::cell::Cell::new(0),
        }
    }
}

impl<V> ByTid<V> {
    #[inline]
    fn find(&self, tid: u32) -> Option<usize> {
        let last = self.last.get();
        if self.entries.get(last).is_some_and(|e| e.0 == tid) {
            return Some(last);
        }
        let i = *self.index.get(&tid)?;
        self.last.set(i);
        Some(i)
    }

    #[inline]
    pub fn get(&self, tid: &u32) -> Option<&V> {
        self.find(*tid).map(|i| &self.entries[i].1)
    }

    #[inline]
    pub fn get_mut(&mut self, tid: &u32) -> Option<&mut V> {
        self.find(*tid).map(|i| &mut self.entries[i].1)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn contains_key(&self, tid: &u32) -> bool {
        self.find(*tid).is_some()
    }

    /// The value for `tid`, made by `make` if there is none.
    #[inline]
    pub fn get_or_insert_with(&mut self, tid: u32, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(tid) {
            Some(i) => i,
            None => {
                let i = self.entries.len();
                self.entries.push((tid, make()));
                self.index.insert(tid, i);
                self.last.set(i);
                i
            }
        };
        &mut self.entries[i].1
    }

    /// Sets the value for `tid`, returning the one it replaces.
    pub fn insert(&mut self, tid: u32, v: V) -> Option<V> {
        let mut v = Some(v);
        let slot = self.get_or_insert_with(tid, || v.take().expect("taken once"));
        v.map(|v| std::mem::replace(slot, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (tid, value) pairs in the order the threads were first seen.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        self.entries.iter().map(|(t, v)| (*t, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|e| &e.1)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|e| &mut e.1)
    }
}

impl<V> std::ops::Index<&u32> for ByTid<V> {
    type Output = V;

    fn index(&self, tid: &u32) -> &V {
        self.get(tid).expect("no such thread")
    }
}

impl<V> std::ops::Index<&i32> for ByP<V> {
    type Output = V;

    fn index(&self, p: &i32) -> &V {
        self.get(p).expect("no such P")
    }
}

#[cfg(test)]
mod tests {
    use super::{ByP, ByTid};

    #[test]
    fn by_tid_finds_every_thread_in_any_order() {
        let mut m = ByTid::default();
        assert!(m.is_empty());
        for tid in [700, 5, 90_000, 6] {
            m.insert(tid, tid * 2);
        }
        *m.get_or_insert_with(5, || 0) += 1;
        m.insert(6, 1);
        assert_eq!(m.len(), 4);
        // Alternating lookups: the memo must never answer for another thread.
        for tid in [5, 5, 700, 5, 90_000, 90_000, 6, 700] {
            let want = match tid {
                5 => 11,
                6 => 1,
                t => t * 2,
            };
            assert_eq!(m.get(&tid), Some(&want), "tid {tid}");
            assert_eq!(m[&tid], want);
        }
        assert_eq!(m.get(&7), None);
        assert!(!m.contains_key(&7) && m.contains_key(&90_000));
        *m.get_mut(&700).unwrap() = 1;
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [(700, &1), (5, &11), (90_000, &180_000), (6, &1)]
        );
        assert_eq!(m.keys().collect::<Vec<_>>(), [700, 5, 90_000, 6]);
    }

    #[test]
    fn by_p_keeps_dense_and_wild_ids() {
        let mut m = ByP::default();
        m.insert(3, "three");
        *m.get_or_insert_with(0, || "zero") = "zero!";
        m.insert(-1, "minus one");
        m.insert(1 << 30, "wild");
        assert_eq!(m.len(), 4);
        m.insert(3, "three again");
        assert_eq!(m.len(), 4, "replacing is not adding");
        assert_eq!(m.get(&3), Some(&"three again"));
        assert_eq!(m[&0], "zero!");
        assert_eq!(m.get(&1), None);
        assert_eq!(m.get(&4096), None);
        assert!(m.contains_key(&(1 << 30)) && m.contains_key(&-1));
        // A wild id does not grow the slots.
        assert_eq!(m.slots.len(), 4);
        let mut keys: Vec<i32> = m.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, [-1, 0, 3, 1 << 30]);
        for v in m.values_mut() {
            *v = "x";
        }
        assert!(m.values().all(|v| *v == "x"));
    }
}
