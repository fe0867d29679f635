//! The hash maps of the per-event hot path (model and Perfetto writer), keyed by goids, tids,
//! P ids, code addresses and interned names: SipHash's DoS resistance buys nothing there and
//! costs a tenth of the daemon's time, so they use rustc-hash's FxHash.
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub type FastSet<K> = rustc_hash::FxHashSet<K>;
