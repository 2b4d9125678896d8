//! A decoded record (digital samples of every signal plus header metadata) and the functions
//! that read one from a local path or any [`RecordSource`], verifying header checksums.

use std::path::Path;

use crate::error::WfdbError;
use crate::header::{Header, SignalSpec};
use crate::multi_segment;
use crate::signal_file::FileGroup;
use crate::source::{DirSource, RecordSource};

/// A record read into memory.
///
/// Multi-frequency records (`xN` samples per frame) keep each signal at its own rate:
/// `digital[s]` holds `n_samples * signals[s].samples_per_frame` samples, the rate of signal `s`
/// is [`Record::signal_fs`] (this is `wfdb.rdrecord(..., smooth_frames=False)`). Ingest
/// resamples signals to a common rate itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Record name from the header.
    pub name: String,
    /// Frame rate (Hz): the rate of signals with one sample per frame.
    pub fs: f64,
    /// Number of frames.
    pub n_samples: usize,
    /// Base time as written in the header, if any.
    pub base_time: Option<String>,
    /// Base date as written in the header, if any.
    pub base_date: Option<String>,
    /// The header's description of each signal read, in output order.
    pub signals: Vec<SignalSpec>,
    /// Digital samples per signal; missing samples hold `signals[s].invalid_code()`.
    pub digital: Vec<Vec<i32>>,
    /// Header comment lines, in order.
    pub comments: Vec<String>,
}

impl Record {
    /// Physical values of signal `sig`: `(d - baseline) / gain`, NaN for missing samples.
    pub fn physical(&self, sig: usize) -> Vec<f64> {
        let spec = &self.signals[sig];
        let (invalid, baseline, gain) =
            (spec.invalid_code(), f64::from(spec.baseline), spec.gain());
        self.digital[sig]
            .iter()
            .map(|&d| {
                if Some(d) == invalid {
                    f64::NAN
                } else {
                    (f64::from(d) - baseline) / gain
                }
            })
            .collect()
    }

    /// Sampling rate of signal `sig` (frame rate times samples per frame).
    pub fn signal_fs(&self, sig: usize) -> f64 {
        self.fs * self.signals[sig].samples_per_frame as f64
    }

    /// Index of the first signal whose description is `name`.
    pub fn signal_index(&self, name: &str) -> Option<usize> {
        self.signals.iter().position(|s| s.description == name)
    }
}

/// Options for [`read_record_with`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Read only these signals (header indices, output in this order); all when `None`.
    /// Files holding no requested signal are not fetched.
    pub channels: Option<Vec<usize>>,
    /// Skip the header checksum verification.
    pub ignore_checksums: bool,
}

/// Reads the record at `path` (the header path without `.hea`, e.g. `data/100`).
pub fn read_record(path: &Path) -> Result<Record, WfdbError> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| WfdbError::NotFound {
            file: path.display().to_string(),
        })?;
    read_record_from(&DirSource::new(dir), name)
}

/// Reads record `name` (relative to the source, may contain folders: `records500/00000/00001_hr`).
pub fn read_record_from(source: &dyn RecordSource, name: &str) -> Result<Record, WfdbError> {
    read_record_with(source, name, &ReadOptions::default())
}

/// Reads record `name` from `source` with `options`.
pub fn read_record_with(
    source: &dyn RecordSource,
    name: &str,
    options: &ReadOptions,
) -> Result<Record, WfdbError> {
    let header_path = format!("{name}.hea");
    let header = read_header_from(source, name)?;
    let folder = folder_of(name);
    if header.is_multi_segment() {
        return multi_segment::read(source, folder, &header, &header_path, options);
    }
    read_single_segment(source, folder, &header, &header_path, options)
}

/// Reads and parses only the header of record `name`.
pub fn read_header_from(source: &dyn RecordSource, name: &str) -> Result<Header, WfdbError> {
    let header_path = format!("{name}.hea");
    let bytes = source.fetch(&header_path)?;
    let text = String::from_utf8_lossy(&bytes);
    Header::parse(&text, &header_path)
}

/// The folder part of a record name, with its trailing `/` (empty when none).
pub(crate) fn folder_of(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..=i])
}

/// Reads a single-segment record whose header has been parsed; checksums are verified (unless
/// `options` says not to) when the header gives the number of samples.
pub(crate) fn read_single_segment(
    source: &dyn RecordSource,
    folder: &str,
    header: &Header,
    header_path: &str,
    options: &ReadOptions,
) -> Result<Record, WfdbError> {
    let channels: Vec<usize> = match &options.channels {
        Some(list) => list.clone(),
        None => (0..header.signals.len()).collect(),
    };
    if let Some(&bad) = channels.iter().find(|&&c| c >= header.signals.len()) {
        return Err(WfdbError::NoSuchChannel {
            file: header_path.to_string(),
            channel: bad,
            n_signals: header.signals.len(),
        });
    }
    let mut digital: Vec<Option<Vec<i32>>> = vec![None; header.signals.len()];
    let mut stored_sums = vec![0i64; header.signals.len()];
    let mut frames_held = vec![0usize; header.signals.len()];
    let mut n_frames = header.n_samples;
    for file_name in file_order(&header.signals) {
        let members: Vec<usize> = (0..header.signals.len())
            .filter(|&s| header.signals[s].file_name == file_name)
            .collect();
        if !members.iter().any(|s| channels.contains(s)) {
            continue;
        }
        let path = format!("{folder}{file_name}");
        if file_name == "~" {
            return Err(WfdbError::Unsupported {
                file: header_path.to_string(),
                reason: "null signals (file `~`) outside a multi-segment record".into(),
            });
        }
        let group = FileGroup {
            specs: members.iter().map(|&s| &header.signals[s]).collect(),
            path,
        };
        let bytes = source.fetch(&group.path)?;
        let decoded = group.decode(&bytes, n_frames)?;
        n_frames.get_or_insert(decoded.frames_in_file);
        for ((&s, samples), sum) in members.iter().zip(decoded.samples).zip(decoded.stored_sums) {
            digital[s] = Some(samples);
            stored_sums[s] = sum;
            frames_held[s] = decoded.frames_in_file;
        }
    }
    let mut record = Record {
        name: header.record_name.clone(),
        fs: header.fs,
        n_samples: n_frames.unwrap_or(0),
        base_time: header.base_time.clone(),
        base_date: header.base_date.clone(),
        signals: Vec::with_capacity(channels.len()),
        digital: Vec::with_capacity(channels.len()),
        comments: header.comments.clone(),
    };
    for &c in &channels {
        let samples = digital[c].clone().unwrap_or_default();
        // header(5): checksums are verified only against a record length the header gives.
        if let (false, Some(said)) = (options.ignore_checksums, header.n_samples) {
            let longer = (frames_held[c] > said).then_some((frames_held[c], said));
            verify_checksum(&header.signals[c], stored_sums[c], c, header_path, longer)?;
        }
        record.signals.push(header.signals[c].clone());
        record.digital.push(samples);
    }
    Ok(record)
}

/// Signal file names in order of first appearance.
fn file_order(signals: &[SignalSpec]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for spec in signals {
        if !names.contains(&spec.file_name.as_str()) {
            names.push(&spec.file_name);
        }
    }
    names
}

/// Compares the 16-bit wrapped `sum` of a signal's stored samples with the header checksum;
/// `file_longer` goes into the error (`WfdbError::ChecksumMismatch`).
fn verify_checksum(
    spec: &SignalSpec,
    sum: i64,
    signal: usize,
    header_path: &str,
    file_longer: Option<(usize, usize)>,
) -> Result<(), WfdbError> {
    let Some(expected) = spec.checksum else {
        return Ok(());
    };
    let actual = i32::from(sum as i16);
    if actual != i32::from(expected as i16) {
        return Err(WfdbError::ChecksumMismatch {
            file: header_path.to_string(),
            signal,
            name: spec.description.clone(),
            expected,
            actual,
            file_longer,
        });
    }
    Ok(())
}
