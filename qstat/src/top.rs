//! "Top" lists: the most frequent envelope senders and recipient domains
//! (where a flood comes from). This module owns the bounded counter.
//!
//! Counts are exact while there are at most [`DEFAULT_CAPACITY`]` * 2`
//! distinct keys. Beyond that the counter prunes in the manner of
//! Misra–Gries: it subtracts the `capacity`-th largest count from every
//! key and forgets the keys that drop to zero. Memory stays bounded, every
//! key seen more than `total / capacity` times survives, and each count
//! is low by at most [`TopCounter::undercount`] (which is at most
//! `total / capacity`).

use std::collections::HashMap;

/// Distinct keys kept exactly before pruning starts (twice this many are
/// held at most).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// A bounded frequency counter over byte strings.
#[derive(Debug, Clone)]
pub struct TopCounter {
    map: HashMap<Box<[u8]>, u64>,
    capacity: usize,
    undercount: u64,
    total: u64,
}

impl TopCounter {
    /// A counter that keeps `capacity` keys after each pruning (at least 1).
    pub fn new(capacity: usize) -> TopCounter {
        TopCounter { map: HashMap::new(), capacity: capacity.max(1), undercount: 0, total: 0 }
    }

    /// Counts one occurrence of `key`.
    pub fn add(&mut self, key: &[u8]) {
        self.total += 1;
        if let Some(c) = self.map.get_mut(key) {
            *c += 1;
            return;
        }
        self.map.insert(key.into(), 1);
        if self.map.len() > 2 * self.capacity {
            self.prune();
        }
    }

    fn prune(&mut self) {
        let mut counts: Vec<u64> = self.map.values().copied().collect();
        let idx = counts.len() - self.capacity;
        let (_, m, _) = counts.select_nth_unstable(idx);
        let m = *m;
        self.map.retain(|_, c| {
            *c = c.saturating_sub(m);
            *c > 0
        });
        self.undercount += m;
    }

    /// Occurrences counted in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Distinct keys held now.
    pub fn distinct(&self) -> usize {
        self.map.len()
    }

    /// How much any count may be below the truth (0: exact).
    pub fn undercount(&self) -> u64 {
        self.undercount
    }

    /// The `n` largest counts, largest first (ties by key, for a stable
    /// output).
    pub fn top(&self, n: usize) -> Vec<(Vec<u8>, u64)> {
        let mut v: Vec<(&[u8], u64)> = self.map.iter().map(|(k, &c)| (&k[..], c)).collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.truncate(n);
        v.into_iter().map(|(k, c)| (k.to_vec(), c)).collect()
    }
}

/// The domain of an address, lower-cased: what follows the last `@`
/// (empty when there is none).
pub fn domain_of(address: &[u8]) -> Vec<u8> {
    match address.iter().rposition(|&b| b == b'@') {
        Some(i) => address[i + 1..].to_ascii_lowercase(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_when_small() {
        let mut t = TopCounter::new(10);
        for k in ["a", "b", "a", "c", "a", "b"] {
            t.add(k.as_bytes());
        }
        assert_eq!(t.top(2), vec![(b"a".to_vec(), 3), (b"b".to_vec(), 2)]);
        assert_eq!(t.top(5).len(), 3);
        assert_eq!((t.total(), t.undercount(), t.distinct()), (6, 0, 3));
    }

    #[test]
    fn bounded_and_keeps_the_flood() {
        let cap = 50;
        let mut t = TopCounter::new(cap);
        let mut flood = 0;
        for i in 0..100_000u64 {
            if i % 3 == 0 {
                t.add(b"flood@example");
                flood += 1;
            } else {
                t.add(format!("random{i}@example").as_bytes());
            }
            assert!(t.distinct() <= 2 * cap + 1);
        }
        let top = t.top(1);
        assert_eq!(top[0].0, b"flood@example");
        assert!(top[0].1 <= flood && top[0].1 + t.undercount() >= flood, "{top:?} {}", t.undercount());
        assert!(t.undercount() > 0);
        assert!(t.undercount() <= t.total() / cap as u64);
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of(b"a@Example.ORG"), b"example.org");
        assert_eq!(domain_of(b"a@b@c"), b"c");
        assert_eq!(domain_of(b"postmaster"), b"");
        assert_eq!(domain_of(b""), b"");
    }
}
