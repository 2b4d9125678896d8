//! Where a whole split's windows stay while an evaluation revisits them: in memory, or on disk in
//! a scratch file mapped into memory, so that a labelled set larger than RAM still evaluates
//! (the page cache keeps what fits; the rest is read back from the file as windows are used).
//!
//! The scratch file is unlinked as soon as it is created (`tempfile::tempfile_in`): nothing is
//! left behind, even when the process is killed. Only the stored values (int16) go to disk; the
//! windows' identities, labels and lead masks stay in memory.

use std::io::Write;
use std::path::PathBuf;

use super::{ShardWindows, SplitWindows};
use crate::error::DataError;
use crate::schema::N_LEADS;

/// Where [`read_held`] keeps the stored values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    Memory,
    /// In an unlinked scratch file in this folder, mapped into memory.
    Disk(PathBuf),
}

/// The stored values of a split's windows, wherever [`Hold`] put them.
#[derive(Debug)]
pub enum HeldSignal {
    Memory(Vec<i16>),
    Mapped(memmap2::Mmap),
}

impl AsRef<[i16]> for HeldSignal {
    fn as_ref(&self) -> &[i16] {
        match self {
            HeldSignal::Memory(values) => values,
            HeldSignal::Mapped(map) => {
                // SAFETY: the map is page-aligned (so aligned for i16) and holds a whole number of
                // i16 written by `read_held`; its file was unlinked at creation and is written by
                // no one else, so the bytes cannot change while the map lives.
                unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<i16>(), map.len() / 2) }
            }
        }
    }
}

impl ShardWindows {
    /// The bytes the split's stored values take at most (every lead present, 2 bytes a value),
    /// from the manifest's counts: what [`Hold::Memory`] would hold.
    pub fn signal_bytes(&self) -> u64 {
        let counts = &self.manifest.counts;
        let rows = match self.split.as_str() {
            crate::loader::ALL_SPLITS => counts.rows,
            split => counts.splits.get(split).copied().unwrap_or(0),
        };
        rows * (N_LEADS * self.samples * 2) as u64
    }
}

/// Reads every remaining shard of `shards` and keeps the stored values as `hold` says;
/// `shard_done` is told after each shard. The windows, their order and their values are those of
/// `read_split_windows`.
pub fn read_held(
    shards: &mut ShardWindows,
    hold: &Hold,
    shard_done: &mut dyn FnMut(),
) -> Result<SplitWindows<HeldSignal>, DataError> {
    let mut scratch = shards.empty();
    let dir = match hold {
        Hold::Memory => {
            while shards.append_next(&mut scratch)? {
                shard_done();
            }
            return Ok(scratch.with_signal(HeldSignal::Memory));
        }
        Hold::Disk(dir) => dir,
    };
    let io = |source| DataError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = tempfile::tempfile_in(dir).map_err(io)?;
    let (mut out, mut bytes) = (shards.empty(), Vec::new());
    while shards.append_next(&mut scratch)? {
        bytes.clear();
        bytes.extend(scratch.signal.iter().flat_map(|v| v.to_ne_bytes()));
        file.write_all(&bytes).map_err(io)?;
        let base = out.starts.last().copied().unwrap_or(0);
        out.starts
            .extend(scratch.starts[1..].iter().map(|s| base + s));
        out.windows.append(&mut scratch.windows);
        out.lead_mask.append(&mut scratch.lead_mask);
        scratch.signal.clear();
        scratch.starts.truncate(1);
        shard_done();
    }
    if out.starts.last() == Some(&0) {
        return Ok(out.with_signal(HeldSignal::Memory));
    }
    // SAFETY: see `HeldSignal::as_ref`: the file is ours alone and no longer written.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(out.with_signal(|_| HeldSignal::Mapped(map)))
}

impl<S> SplitWindows<S> {
    /// Where the stored values are.
    pub fn signal(&self) -> &S {
        &self.signal
    }
}

impl SplitWindows {
    /// The same windows with their stored values turned into `S` by `f`.
    fn with_signal<S>(self, f: impl FnOnce(Vec<i16>) -> S) -> SplitWindows<S> {
        SplitWindows {
            samples: self.samples,
            scale: self.scale,
            sampling_rate: self.sampling_rate,
            window_samples: self.window_samples,
            windows: self.windows,
            lead_mask: self.lead_mask,
            starts: self.starts,
            signal: f(self.signal),
        }
    }
}
