//! Reads one signal file shared by one or more interleaved signals: finds the data (byte
//! offset, MATLAB v4 header), decodes the frames, de-interleaves samples per signal, applies
//! format-8 differences and skew, and marks samples that a skew pushes past the file as missing.

use crate::error::WfdbError;
use crate::format::SignalFormat;
use crate::header::SignalSpec;
use crate::matlab;

/// The signals stored in one file, in frame order.
pub(crate) struct FileGroup<'a> {
    /// Path of the file as fetched (for errors).
    pub path: String,
    /// The header's specs of every signal in the file, in frame order.
    pub specs: Vec<&'a SignalSpec>,
}

/// Decoded samples of every signal of a file (each `n_frames * spf` long), the number of
/// whole frames the file holds, and per signal the sum of its stored samples in the first
/// `n_frames` frames before the skew is applied (what the header checksum covers).
pub(crate) struct DecodedFile {
    pub samples: Vec<Vec<i32>>,
    pub frames_in_file: usize,
    pub stored_sums: Vec<i64>,
}

impl FileGroup<'_> {
    /// Decodes `n_frames` frames (or every whole frame when `None`) from `bytes`.
    pub fn decode(&self, bytes: &[u8], n_frames: Option<usize>) -> Result<DecodedFile, WfdbError> {
        let first = self.specs[0];
        let format = self.common_format()?;
        let frame_len: usize = self.specs.iter().map(|s| s.samples_per_frame).sum();
        let offset = if self.path.ends_with(".mat") {
            matlab::data_offset(bytes, &self.path, format, frame_len, first.byte_offset)?
        } else {
            usize::try_from(first.byte_offset).unwrap_or(usize::MAX)
        };
        let data = bytes.get(offset..).unwrap_or(&[]);
        let frames_in_file = format.samples_in(data.len()) / frame_len;
        let n_frames = n_frames.unwrap_or(frames_in_file);
        if frames_in_file < n_frames {
            // A header's sample count may be anything up to 2^64 - 1: saturate rather than wrap.
            let data_bytes = format.bytes_for(n_frames.saturating_mul(frame_len));
            return Err(WfdbError::Truncated {
                file: self.path.clone(),
                needed: offset.saturating_add(data_bytes) as u64,
                found: bytes.len() as u64,
            });
        }
        let max_skew = self.specs.iter().map(|s| s.skew).max().unwrap_or(0);
        let frames_read = frames_in_file.min(n_frames.saturating_add(max_skew));
        let flat = format.decode(data, frames_read * frame_len);
        let mut position = 0;
        let mut samples = Vec::with_capacity(self.specs.len());
        let mut stored_sums = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            let spf = spec.samples_per_frame;
            let mut signal = Vec::with_capacity(frames_read * spf);
            if spf == 1 {
                signal.extend(flat.iter().skip(position).step_by(frame_len));
            } else {
                for frame in flat.chunks_exact(frame_len) {
                    signal.extend_from_slice(&frame[position..position + spf]);
                }
            }
            position += spf;
            if format == SignalFormat::Diff8 {
                let mut value = spec.initial_value;
                for sample in &mut signal {
                    value = value.wrapping_add(*sample);
                    *sample = value;
                }
            }
            let stored = &signal[..n_frames * spf];
            stored_sums.push(stored.iter().map(|&d| i64::from(d)).sum());
            samples.push(self.apply_skew(spec, signal, n_frames, format)?);
        }
        Ok(DecodedFile {
            samples,
            frames_in_file,
            stored_sums,
        })
    }

    fn common_format(&self) -> Result<SignalFormat, WfdbError> {
        let first = self.specs[0];
        let format = first.format().ok_or_else(|| WfdbError::UnsupportedFormat {
            file: self.path.clone(),
            format: first.format_code.to_string(),
        })?;
        if let Some(other) = self
            .specs
            .iter()
            .find(|s| s.format_code != first.format_code)
        {
            return Err(WfdbError::Unsupported {
                file: self.path.clone(),
                reason: format!(
                    "signals sharing the file use formats {} and {}",
                    first.format_code, other.format_code
                ),
            });
        }
        if let Some(other) = self
            .specs
            .iter()
            .find(|s| s.byte_offset != first.byte_offset)
        {
            return Err(WfdbError::Unsupported {
                file: self.path.clone(),
                reason: format!(
                    "signals sharing the file give byte offsets {} and {}",
                    first.byte_offset, other.byte_offset
                ),
            });
        }
        Ok(format)
    }

    /// Drops the first `skew` frames and pads the end with the missing code where the file ends.
    fn apply_skew(
        &self,
        spec: &SignalSpec,
        mut signal: Vec<i32>,
        n_frames: usize,
        format: SignalFormat,
    ) -> Result<Vec<i32>, WfdbError> {
        let spf = spec.samples_per_frame;
        signal.drain(..spec.skew.saturating_mul(spf).min(signal.len()));
        let wanted = n_frames * spf;
        if signal.len() < wanted {
            let code = format
                .invalid_code()
                .ok_or_else(|| WfdbError::Unsupported {
                    file: self.path.clone(),
                    reason: "a format 8 signal is skewed past the end of the file".into(),
                })?;
            signal.resize(wanted, code);
        }
        signal.truncate(wanted);
        Ok(signal)
    }
}
