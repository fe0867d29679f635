//! `--detail N`: for goroutines whose counts differ, both sides' transitions side by side,
//! aligned, with what did not align marked and a few transitions of context around it. Only
//! for a reader hunting a mismatch; the rows do not depend on it.
use std::fmt::Write as _;

use super::matcher::Item;

/// Both sides' sequences of `goid`, aligned, times from the window's `start`.
pub(super) fn listing(goid: u64, go_items: &[Item], our_items: &[Item], start: i64) -> String {
    let a: Vec<&Item> = go_items.iter().filter(|i| i.goid == goid).collect();
    let b: Vec<&Item> = our_items.iter().filter(|i| i.goid == goid).collect();
    let key = |i: &&Item| (i.from, i.to);
    let (ma, mb) = align(
        &a.iter().map(key).collect::<Vec<_>>(),
        &b.iter().map(key).collect::<Vec<_>>(),
    );
    let mut seq: Vec<(i64, &str, bool, &Item)> = a
        .iter()
        .zip(&ma)
        .map(|(i, m)| (i.ts, "go  ", *m, *i))
        .chain(b.iter().zip(&mb).map(|(i, m)| (i.ts, "ours", *m, *i)))
        .collect();
    seq.sort_by_key(|x| x.0);
    // Shown: what lies within 4 transitions of one that did not align.
    let near: Vec<bool> = (0..seq.len())
        .map(|k| {
            seq[k.saturating_sub(4)..(k + 5).min(seq.len())]
                .iter()
                .any(|x| !x.2)
        })
        .collect();
    let mut s = format!(
        "goroutine {goid} ({} Go transitions, {} ours; ! = not aligned):\n",
        a.len(),
        b.len()
    );
    let mut skipped = false;
    for (k, (ts, side, matched, i)) in seq.iter().enumerate() {
        if !near[k] {
            skipped = true;
            continue;
        }
        if skipped {
            s.push_str("  ...\n");
            skipped = false;
        }
        let _ = writeln!(
            s,
            "  {} {side} {:>12.3}us {:>8}->{:<8} M={} P={} by={}",
            if *matched { ' ' } else { '!' },
            (ts - start) as f64 / 1e3,
            i.from.name(),
            i.to.name(),
            i.m,
            i.p,
            i.by
        );
    }
    if skipped {
        s.push_str("  ...\n");
    }
    s
}

/// Aligns two sequences that mostly agree: walks both, and where they disagree skips the
/// fewest elements (up to 8 on each side) after which the next three agree. Returns
/// which elements of each side were aligned.
fn align<T: PartialEq>(a: &[T], b: &[T]) -> (Vec<bool>, Vec<bool>) {
    let (mut ma, mut mb) = (vec![false; a.len()], vec![false; b.len()]);
    let sync = |i: usize, j: usize| {
        (0..3).all(|k| match (a.get(i + k), b.get(j + k)) {
            (Some(x), Some(y)) => x == y,
            (None, None) => true,
            _ => k > 0,
        })
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            ma[i] = true;
            mb[j] = true;
            i += 1;
            j += 1;
            continue;
        }
        let skip = (1..=16usize).find_map(|d| {
            (d.saturating_sub(8)..=d.min(8))
                .map(|x| (x, d - x))
                .find(|&(x, y)| sync(i + x, j + y))
        });
        let (x, y) = skip.unwrap_or((1, 1));
        i += x;
        j += y;
    }
    (ma, mb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_skips_what_one_side_lacks() {
        let a = [1, 2, 3, 1, 2, 3, 1, 2, 3];
        let b = [1, 2, 3, 1, 9, 2, 3, 1, 2, 3];
        let (ma, mb) = align(&a, &b);
        assert!(ma.iter().all(|m| *m));
        assert_eq!(mb.iter().filter(|m| !**m).count(), 1);
        assert!(!mb[4]);
        let (ma, mb) = align(&[1, 2, 4, 4], &[1, 2, 5, 5]);
        assert_eq!(ma, [true, true, false, false]);
        assert_eq!(mb, [true, true, false, false]);
    }
}
