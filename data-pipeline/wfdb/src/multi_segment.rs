//! Multi-segment records: reads each segment (a single-segment record, `~` for a gap) and joins
//! them into one [`Record`] whose signals follow the layout segment (a first segment of length
//! 0) or, without one, the first real segment. With a layout segment (a variable layout) signals
//! are matched by description, and a signal absent from a segment is missing there; without one
//! (a fixed layout) every segment has the same signals in the same order, matched by position as
//! WFDB does, so repeated or empty descriptions stay apart. Every signal of a gap is missing.
//!
//! Segments may store a signal with different formats, gains and baselines, so merged signals
//! are re-coded: they report format 32 (missing = `i32::MIN`), the layout's baseline and the
//! finest gain (most codes per unit) of the layout and the segments holding the signal, so no
//! segment's samples lose resolution; samples of a segment with another gain or baseline are
//! converted through physical units and rounded to that finer grid. Merged signals carry no
//! checksum (each segment's own checksums are verified).

use crate::error::WfdbError;
use crate::header::{Header, SignalSpec};
use crate::record::{read_header_from, read_single_segment, ReadOptions, Record};
use crate::source::RecordSource;

/// The format code merged multi-segment signals report.
const MERGED_FORMAT: u32 = 32;

/// Most samples (all merged signals together) a multi-segment record may hold: 2^30, 4 GiB of
/// digital values. A gap segment is declared by its length alone, with no file that would
/// contradict it, so without a bound a header could ask for any amount of memory, and a failed
/// allocation aborts the process instead of returning an error.
pub const MAX_MERGED_SAMPLES: usize = 1 << 30;

pub(crate) fn read(
    source: &dyn RecordSource,
    folder: &str,
    header: &Header,
    header_path: &str,
    options: &ReadOptions,
) -> Result<Record, WfdbError> {
    let unsupported = |reason: String| WfdbError::Unsupported {
        file: header_path.to_string(),
        reason,
    };
    let mut segment_headers = Vec::with_capacity(header.segments.len());
    for segment in &header.segments {
        let segment_header = if segment.name == "~" {
            None
        } else {
            let name = format!("{folder}{}", segment.name);
            let h = read_header_from(source, &name)?;
            if h.is_multi_segment() {
                return Err(unsupported(format!(
                    "segment {} is itself multi-segment",
                    segment.name
                )));
            }
            if h.fs != header.fs {
                return Err(unsupported(format!(
                    "segment {} samples at {} Hz, the record at {} Hz",
                    segment.name, h.fs, header.fs
                )));
            }
            Some(h)
        };
        segment_headers.push(segment_header);
    }
    let has_layout = header.segments.first().is_some_and(|s| s.n_samples == 0);
    let layout = segment_headers
        .iter()
        .flatten()
        .next()
        .ok_or_else(|| unsupported("every segment is a gap".into()))?;
    let all: Vec<usize> = (0..layout.signals.len()).collect();
    let channels = options.channels.as_ref().unwrap_or(&all);
    if let Some(&bad) = channels.iter().find(|&&c| c >= layout.signals.len()) {
        return Err(WfdbError::NoSuchChannel {
            file: header_path.to_string(),
            channel: bad,
            n_signals: layout.signals.len(),
        });
    }
    let mut outputs: Vec<SignalSpec> = channels
        .iter()
        .map(|&c| SignalSpec {
            format_code: MERGED_FORMAT,
            checksum: None,
            skew: 0,
            byte_offset: 0,
            ..layout.signals[c].clone()
        })
        .collect();
    let first_data = usize::from(has_layout);
    // Where each merged signal sits in each data segment (`None`: a gap segment).
    let mut placements: Vec<Option<Vec<Option<usize>>>> = Vec::new();
    for (segment, segment_header) in header
        .segments
        .iter()
        .zip(&segment_headers)
        .skip(first_data)
    {
        let Some(segment_header) = segment_header else {
            placements.push(None);
            continue;
        };
        let sources = segment_sources(
            has_layout,
            &outputs,
            channels,
            layout,
            segment_header,
            &segment.name,
        )
        .map_err(unsupported)?;
        for (out, src) in outputs.iter_mut().zip(&sources) {
            let gain = src.map_or(0.0, |k| segment_header.signals[k].gain());
            if gain > out.gain() {
                out.adc_gain = gain;
            }
        }
        placements.push(Some(sources));
    }
    let frames = bounded_frames(header, header_path, &outputs, first_data)?;
    let mut digital: Vec<Vec<i32>> = vec![Vec::new(); outputs.len()];
    for (out, spec) in digital.iter_mut().zip(&outputs) {
        let wanted = frames * spec.samples_per_frame;
        out.try_reserve_exact(wanted).map_err(|e| {
            unsupported(format!(
                "cannot allocate {wanted} samples for signal {}: {e}",
                spec.description
            ))
        })?;
    }
    let mut n_samples = 0;
    for ((segment, segment_header), placement) in header
        .segments
        .iter()
        .zip(&segment_headers)
        .skip(first_data)
        .zip(placements)
    {
        n_samples += segment.n_samples;
        let (Some(segment_header), Some(sources)) = (segment_header, placement) else {
            for (out, spec) in digital.iter_mut().zip(&outputs) {
                out.resize(
                    out.len() + segment.n_samples * spec.samples_per_frame,
                    i32::MIN,
                );
            }
            continue;
        };
        let wanted: Vec<usize> = sources.iter().flatten().copied().collect();
        let segment_options = ReadOptions {
            channels: Some(wanted.clone()),
            ignore_checksums: options.ignore_checksums,
        };
        let name = format!("{folder}{}", segment.name);
        let part = read_single_segment(
            source,
            folder,
            segment_header,
            &format!("{name}.hea"),
            &segment_options,
        )?;
        if part.n_samples != segment.n_samples {
            return Err(unsupported(format!(
                "segment {} has {} frames, the record header says {}",
                segment.name, part.n_samples, segment.n_samples
            )));
        }
        for ((out, spec), src) in digital.iter_mut().zip(&outputs).zip(&sources) {
            let Some(src) = src else {
                out.resize(
                    out.len() + segment.n_samples * spec.samples_per_frame,
                    i32::MIN,
                );
                continue;
            };
            let k = wanted
                .iter()
                .position(|w| w == src)
                .expect("requested channel");
            let stored = &part.signals[k];
            if stored.samples_per_frame != spec.samples_per_frame {
                return Err(unsupported(format!(
                    "signal {} has {} samples per frame in segment {} but {} in the layout",
                    spec.description,
                    stored.samples_per_frame,
                    segment.name,
                    spec.samples_per_frame
                )));
            }
            out.extend(part.digital[k].iter().map(|&d| recode(d, stored, spec)));
        }
    }
    Ok(Record {
        name: header.record_name.clone(),
        fs: header.fs,
        n_samples,
        base_time: header.base_time.clone(),
        base_date: header.base_date.clone(),
        signals: outputs,
        digital,
        comments: header.comments.clone(),
    })
}

/// For each merged signal, its index among a segment's signals (`None`: the segment lacks it):
/// by description with a layout segment, by position without one.
fn segment_sources(
    has_layout: bool,
    outputs: &[SignalSpec],
    channels: &[usize],
    layout: &Header,
    segment_header: &Header,
    segment_name: &str,
) -> Result<Vec<Option<usize>>, String> {
    if has_layout {
        outputs
            .iter()
            .map(|o| signal_named(segment_header, &o.description, segment_name))
            .collect()
    } else if segment_header.signals.len() == layout.signals.len() {
        Ok(channels.iter().copied().map(Some).collect())
    } else {
        Err(format!(
            "segment {segment_name} has {} signals but the first has {} (without a layout segment every segment has the same signals)",
            segment_header.signals.len(),
            layout.signals.len()
        ))
    }
}

/// The index of the signal described `description` in a segment of a variable layout, `None`
/// when it has none; the error says when several have that description (which is meant is
/// unknowable).
fn signal_named(
    segment_header: &Header,
    description: &str,
    segment_name: &str,
) -> Result<Option<usize>, String> {
    let mut matches = segment_header
        .signals
        .iter()
        .enumerate()
        .filter(|(_, s)| s.description == description)
        .map(|(i, _)| i);
    let first = matches.next();
    if matches.next().is_some() {
        return Err(format!(
            "segment {segment_name} has several signals described `{description}`, so the layout segment cannot tell them apart"
        ));
    }
    Ok(first)
}

/// The record's length in frames, after checking that its segments (from `first_data`) hold at
/// most [`MAX_MERGED_SAMPLES`] samples of the `outputs` signals; the error names the segment line
/// that goes past the bound.
fn bounded_frames(
    header: &Header,
    header_path: &str,
    outputs: &[SignalSpec],
    first_data: usize,
) -> Result<usize, WfdbError> {
    let per_frame = outputs
        .iter()
        .try_fold(0usize, |sum, o| sum.checked_add(o.samples_per_frame));
    let mut frames = Some(0usize);
    for segment in header.segments.iter().skip(first_data) {
        frames = frames.and_then(|f| f.checked_add(segment.n_samples));
        let samples = frames.zip(per_frame).and_then(|(f, p)| f.checked_mul(p));
        if samples.is_none_or(|n| n > MAX_MERGED_SAMPLES) {
            return Err(WfdbError::BadHeader {
                file: header_path.to_string(),
                line: segment.line,
                reason: format!(
                    "segment {} of {} frames takes the record past the {MAX_MERGED_SAMPLES} samples a multi-segment record may hold",
                    segment.name, segment.n_samples
                ),
            });
        }
    }
    Ok(frames.unwrap_or(0))
}

/// Re-codes a segment's digital value for the merged signal `to`.
fn recode(d: i32, from: &SignalSpec, to: &SignalSpec) -> i32 {
    if Some(d) == from.invalid_code() {
        i32::MIN
    } else if from.gain() == to.gain() && from.baseline == to.baseline {
        d
    } else {
        (from.to_physical(d) * to.gain() + f64::from(to.baseline)).round() as i32
    }
}
