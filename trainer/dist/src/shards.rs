//! `Shards`: how a flat buffer (the gradient, the parameters) is split among ranks. Rank `r` owns
//! `[r * shard_len, (r + 1) * shard_len)` clipped to the buffer. Shard lengths are multiples of
//! `ALIGN` elements, the chunk of the CPU backend's `sum_squares` (`CHUNK`,
//! kernels/src/cpu/par.rs), so per-chunk partial sums of a shard are exactly those of the whole
//! buffer and a sharded global gradient norm can be combined bit for bit.

use std::ops::Range;

/// Elements per alignment unit of a shard boundary.
pub const ALIGN: usize = 1 << 14;

/// A partition of `total` elements into one contiguous shard per rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shards {
    pub total: usize,
    pub ranks: usize,
    pub shard_len: usize,
}

impl Shards {
    /// Equal shards of whole `ALIGN` units (the last ones may be shorter or empty).
    pub fn new(total: usize, ranks: usize) -> Shards {
        let units = total.div_ceil(ALIGN);
        let shard_len = units.div_ceil(ranks.max(1)).max(1) * ALIGN;
        Shards {
            total,
            ranks,
            shard_len,
        }
    }

    /// Equal shards without alignment (small buffers: losses, flags).
    pub fn even(total: usize, ranks: usize) -> Shards {
        Shards {
            total,
            ranks,
            shard_len: total.div_ceil(ranks.max(1)).max(1),
        }
    }

    /// The elements rank `rank` owns.
    pub fn range(&self, rank: usize) -> Range<usize> {
        let start = (rank * self.shard_len).min(self.total);
        start..(start + self.shard_len).min(self.total)
    }

    /// The part of `range` that rank `rank` owns: always within `self.range(rank)`, so an
    /// offset into the rank's shard; empty (at an end of that shard) when they do not meet.
    pub fn piece(&self, rank: usize, range: &Range<usize>) -> Range<usize> {
        let own = self.range(rank);
        let start = own.start.max(range.start).min(own.end);
        let end = own.end.min(range.end).max(start);
        start..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_buffer_once_on_aligned_boundaries() {
        for (total, ranks) in [(1, 1), (100_000, 4), (16384 * 3, 2), (5, 3), (1 << 20, 7)] {
            let s = Shards::new(total, ranks);
            let mut next = 0;
            for r in 0..ranks {
                let range = s.range(r);
                assert_eq!(range.start, next.min(total));
                assert!(range.start.is_multiple_of(ALIGN) || range.start == total);
                next = range.end;
            }
            assert_eq!(next, total);
            let bucket = total / 3..total - total / 4;
            let covered: usize = (0..ranks).map(|r| s.piece(r, &bucket).len()).sum();
            assert_eq!(covered, bucket.len());
            for bucket in [
                0..total / 5,
                total / 3..total - total / 4,
                total - total / 5..total,
            ] {
                for r in 0..ranks {
                    let (own, piece) = (s.range(r), s.piece(r, &bucket));
                    assert!(
                        own.start <= piece.start && piece.end <= own.end,
                        "{r} {bucket:?}"
                    );
                }
            }
        }
    }
}
