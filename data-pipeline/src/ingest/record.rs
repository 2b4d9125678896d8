//! Ingesting one planned record: read it (WFDB), pick the signals that are standard ECG leads,
//! preprocess, and turn its windows into rows; or say why it goes to quarantine.

use std::collections::BTreeMap;

use ecgfm_preprocess::{map_leads, DropReason, Pipeline, PreprocessError, Window};
use ecgfm_wfdb::labels::{parse_header_comments, Sex};
use ecgfm_wfdb::{
    read_header_from, read_record_with, ReadOptions, Record, RecordSource, SignalSpec, WfdbError,
};

use crate::ingest::plan::PlannedRecord;
use crate::ingest::read_failure::outside_the_record;
use crate::ingest::row::{quantize, WindowRow};
use crate::manifest::{PartialEntry, QuarantineEntry};
use crate::split::{assign_split, Split, SplitFractions};

/// Run-wide settings every record needs.
pub struct RecordContext<'a> {
    pub pipeline: &'a Pipeline,
    pub source_name: &'a str,
    pub signal_scale: f32,
    pub seed: u64,
    pub fractions: SplitFractions,
    /// Verify header checksums (CinC 2017 headers carry a placeholder 0, so its ingest does not).
    pub verify_checksums: bool,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Rows to write, and what was left out of the record, if anything.
    Rows {
        rows: Vec<WindowRow>,
        partial: Option<PartialEntry>,
    },
    /// Nothing usable; the entry says why.
    Quarantined(QuarantineEntry),
    /// A file of the record could not be read for a reason outside it (`read_failure`): the
    /// ingest stops, and a rerun reads the record again. The read's error, naming the file.
    Unreadable(String),
}

/// Short category of a read failure, the key of the manifest's quarantine counts.
fn wfdb_kind(e: &WfdbError) -> &'static str {
    match e {
        WfdbError::NotFound { .. } => "file not found",
        WfdbError::Io { .. } => "read error",
        WfdbError::BadHeader { .. } => "bad header",
        WfdbError::UnsupportedFormat { .. } | WfdbError::Unsupported { .. } => "unsupported record",
        WfdbError::Truncated { .. } => "truncated signal file",
        WfdbError::ChecksumMismatch { .. } => "checksum mismatch",
        WfdbError::BadMatFile { .. } => "bad MATLAB signal file",
        _ => "unreadable record",
    }
}

/// Short category of a preprocessing failure.
fn preprocess_kind(e: &PreprocessError) -> &'static str {
    match e {
        PreprocessError::NoKnownLeads(_) => "no standard ECG lead",
        PreprocessError::AllLeadsMissing => "all leads missing",
        PreprocessError::AllWindowsFailed { .. } => "every window fails quality",
        PreprocessError::EmptyRecord => "empty record",
        PreprocessError::InvalidSamplingRate(_) => "implausible sampling rate",
        _ => "preprocessing error",
    }
}

/// Why a readable record has no signal worth preprocessing.
#[derive(Debug)]
enum Unusable {
    /// No signal maps to a standard lead.
    NoLead(PreprocessError),
    /// Every signal that maps to a lead is in a unit that is not a voltage (`name (units)` each):
    /// whatever its name says, it is no ECG, and the pipeline works in millivolts.
    NotVoltage(Vec<String>),
}

/// The signals to preprocess, given every signal's name, units and rate: those that map to a
/// standard lead, are in a voltage unit, and share the most common rate among them. Returns the
/// rate, the chosen signal indices, and `name (why)` for the others.
fn select_signals(
    names: &[&str],
    specs: &[SignalSpec],
    rates: &[f64],
) -> Result<(f64, Vec<usize>, Vec<String>), Unusable> {
    let mapping = map_leads(names);
    let (mut mapped, not_voltage): (Vec<usize>, Vec<usize>) = mapping
        .source_of
        .iter()
        .flatten()
        .partition(|&&s| specs[s].millivolts_per_unit().is_some());
    mapped.sort_unstable();
    let not_voltage: Vec<String> = not_voltage
        .into_iter()
        .map(|s| format!("{} (units {})", names[s], specs[s].units))
        .collect();
    if mapped.is_empty() {
        return Err(if not_voltage.is_empty() {
            Unusable::NoLead(PreprocessError::NoKnownLeads(
                names.iter().map(|n| n.to_string()).collect(),
            ))
        } else {
            Unusable::NotVoltage(not_voltage)
        });
    }
    let mut per_rate: BTreeMap<u64, usize> = BTreeMap::new();
    for &s in &mapped {
        *per_rate.entry(rates[s].to_bits()).or_default() += 1;
    }
    let best = mapped
        .iter()
        .map(|&s| rates[s])
        .max_by_key(|rate| per_rate[&rate.to_bits()])
        .expect("mapped is not empty");
    let mut dropped: Vec<String> = mapping
        .dropped
        .iter()
        .map(|d| {
            let why = match d.reason {
                DropReason::Duplicate => "duplicate lead",
                DropReason::Unknown => "not a standard ECG lead",
            };
            format!("{} ({why})", d.name)
        })
        .collect();
    dropped.extend(
        not_voltage
            .into_iter()
            .map(|s| format!("{s}, not a voltage")),
    );
    let (chosen, other_rate): (Vec<usize>, Vec<usize>) =
        mapped.into_iter().partition(|&s| rates[s] == best);
    dropped.extend(
        other_rate
            .into_iter()
            .map(|s| format!("{} (sampled at {} Hz, not {best} Hz)", names[s], rates[s])),
    );
    Ok((best, chosen, dropped))
}

/// Reads the signals of `name` worth preprocessing (only their files are fetched, but for a
/// multi-segment record, which is read whole once to learn its signals, every signal's checksum
/// verified, and then again for the chosen ones). Returns the
/// record (holding the chosen signals, in order), every signal's name, the common rate and the
/// dropped signals; the outer error is a read failure, the inner one a record with no usable lead.
#[allow(clippy::type_complexity)]
fn read_chosen(
    files: &dyn RecordSource,
    name: &str,
    verify_checksums: bool,
) -> Result<Result<(Record, Vec<String>, f64, Vec<String>), Unusable>, WfdbError> {
    let header = read_header_from(files, name)?;
    let (specs, rates): (Vec<SignalSpec>, Vec<f64>) = if header.is_multi_segment() {
        let options = ReadOptions {
            channels: None,
            ignore_checksums: !verify_checksums,
        };
        let record = read_record_with(files, name, &options)?;
        let rates = (0..record.signals.len())
            .map(|s| record.signal_fs(s))
            .collect();
        (record.signals, rates)
    } else {
        let rates = header
            .signals
            .iter()
            .map(|s| header.fs * s.samples_per_frame as f64)
            .collect();
        (header.signals, rates)
    };
    let names: Vec<String> = specs.iter().map(|s| s.description.clone()).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (rate, chosen, dropped) = match select_signals(&name_refs, &specs, &rates) {
        Ok(selection) => selection,
        Err(e) => return Ok(Err(e)),
    };
    let options = ReadOptions {
        channels: Some(chosen),
        ignore_checksums: !verify_checksums,
    };
    let record = read_record_with(files, name, &options)?;
    Ok(Ok((record, names, rate, dropped)))
}

/// The shards' code of a sex: `M` or `F`.
pub(crate) fn sex_code(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "M",
        Sex::Female => "F",
    }
}

/// The rows of one record's windows; `meta` carries the final labels, patient (its id falls back
/// to the record id), age, sex and fold.
pub fn windows_to_rows(
    windows: &[Window],
    meta: &PlannedRecord,
    source_name: &str,
    sampling_rate: f32,
    signal_scale: f32,
    split: Split,
    lead_names: Vec<String>,
) -> Vec<WindowRow> {
    let patient_id = meta.patient_id.as_ref().unwrap_or(&meta.record_id);
    windows
        .iter()
        .map(|w| {
            let mut signal = Vec::new();
            quantize(&w.signal, signal_scale, &mut signal);
            WindowRow {
                record_id: meta.record_id.clone(),
                patient_id: patient_id.clone(),
                source: source_name.to_string(),
                window_index: w.window_index as i32,
                sampling_rate,
                n_samples: w.n_valid as i32,
                lead_names: lead_names.clone(),
                lead_mask: w.lead_mask,
                signal,
                labels: meta.labels.clone(),
                age: meta.age,
                sex: meta.sex.map(|s| sex_code(s).to_string()),
                quality_score: w.quality_score,
                quality_flags: w.quality_flags,
                split,
                fold: meta.fold,
            }
        })
        .collect()
}

/// Reads, preprocesses and windows one record. A record that makes the reader or the
/// preprocessing panic (a bug, never expected) is quarantined with the panic's message instead
/// of ending the ingest.
pub fn process_record(
    files: &dyn RecordSource,
    uri: &str,
    planned: &PlannedRecord,
    ctx: &RecordContext<'_>,
) -> RecordOutcome {
    let attempt = || process_unguarded(files, uri, planned, ctx);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        quarantined(
            ctx,
            planned,
            uri,
            "internal error",
            format!("{uri}: ecgfm failed on this record (a bug; please report it): {message}"),
        )
    })
}

/// The quarantine entry of `planned`.
fn quarantined(
    ctx: &RecordContext<'_>,
    planned: &PlannedRecord,
    uri: &str,
    kind: &str,
    reason: String,
) -> RecordOutcome {
    RecordOutcome::Quarantined(QuarantineEntry {
        source: ctx.source_name.to_string(),
        record: planned.record_id.clone(),
        uri: uri.to_string(),
        kind: kind.to_string(),
        reason: printable(&reason),
    })
}

/// `reason` with its control characters written as `\u{..}` escapes: a header of garbage
/// bytes put them raw into the reason, which `data ingest` and `data inspect` print to a
/// terminal.
fn printable(reason: &str) -> String {
    reason
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect()
}

fn process_unguarded(
    files: &dyn RecordSource,
    uri: &str,
    planned: &PlannedRecord,
    ctx: &RecordContext<'_>,
) -> RecordOutcome {
    let quarantine = |kind: &str, reason: String| quarantined(ctx, planned, uri, kind, reason);
    let preprocess_failed =
        |e: PreprocessError| quarantine(preprocess_kind(&e), format!("{uri}: {e}"));
    let (record, lead_names, rate, dropped) =
        match read_chosen(files, &planned.name, ctx.verify_checksums) {
            Ok(Ok(read)) => read,
            Ok(Err(Unusable::NoLead(e))) => return preprocess_failed(e),
            Ok(Err(Unusable::NotVoltage(leads))) => {
                return quarantine(
                    "ECG not in a voltage unit",
                    format!(
                        "{uri}: no ECG lead is in a voltage unit (uV, mV or V): {}",
                        leads.join(", ")
                    ),
                )
            }
            Err(e) if outside_the_record(&e) => return RecordOutcome::Unreadable(e.to_string()),
            Err(e) => return quarantine(wfdb_kind(&e), e.to_string()),
        };
    let names: Vec<&str> = record
        .signals
        .iter()
        .map(|s| s.description.as_str())
        .collect();
    // The pipeline works in millivolts; `read_chosen` kept only signals in a voltage unit.
    let signals: Vec<Vec<f64>> = record
        .signals
        .iter()
        .enumerate()
        .map(|(s, spec)| {
            let to_mv = spec
                .millivolts_per_unit()
                .expect("read_chosen keeps voltage signals only");
            let mut values = record.physical(s);
            values.iter_mut().for_each(|v| *v *= to_mv);
            values
        })
        .collect();
    let header = planned.header_comments.then(|| {
        let mut header = parse_header_comments(&record.comments);
        if !planned.header_labels {
            // A label CSV gave the labels: the header's `# Dx` is not read, only age and sex.
            header.dx.clear();
            header.malformed.clear();
        }
        header
    });
    if let Some(malformed) = header.as_ref().and_then(|h| h.malformed.first()) {
        // Labels read past a malformed list would be guesses: as a header that does not parse.
        return quarantine("bad header", format!("{uri}.hea: {malformed}"));
    }
    let processed = match ctx.pipeline.process(rate, &names, &signals) {
        Ok(processed) => processed,
        Err(e) => return preprocess_failed(e),
    };
    let mut meta = planned.clone();
    if let Some(header) = header {
        meta.labels.extend(header.dx);
        meta.age = meta.age.or(header.age.map(|a| a as f32));
        meta.sex = meta.sex.or(header.sex);
    }
    // Prefixed by the source's name, as record ids are: two sources' patients never share an id.
    let own_id = planned.patient_id.as_ref().unwrap_or(&planned.record_id);
    let patient_id = format!("{}:{own_id}", ctx.source_name);
    let split = assign_split(
        ctx.source_name,
        &patient_id,
        planned.fold,
        ctx.seed,
        &ctx.fractions,
    );
    meta.patient_id = Some(patient_id);
    let rows = windows_to_rows(
        &processed.windows,
        &meta,
        ctx.source_name,
        ctx.pipeline.config().target_rate_hz as f32,
        ctx.signal_scale,
        split,
        lead_names,
    );
    let mut dropped_leads = dropped;
    dropped_leads.extend(
        processed
            .report
            .empty_leads
            .iter()
            .map(|name| format!("{name} (every sample missing)")),
    );
    let hard_failed_windows = processed.report.hard_failed_windows as u64;
    let partial = (!dropped_leads.is_empty() || hard_failed_windows > 0).then(|| PartialEntry {
        source: ctx.source_name.to_string(),
        record: planned.record_id.clone(),
        dropped_leads,
        hard_failed_windows,
    });
    RecordOutcome::Rows { rows, partial }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecgfm_preprocess::PipelineConfig;
    use ecgfm_wfdb::MemorySource;

    fn planned(name: &str) -> PlannedRecord {
        PlannedRecord::bare(name, false)
    }

    /// Ingests record `name` of `files` with the default pipeline.
    fn ingest(files: &MemorySource, name: &str) -> RecordOutcome {
        ingest_planned(files, &planned(name))
    }

    fn ingest_planned(files: &MemorySource, planned: &PlannedRecord) -> RecordOutcome {
        let name = &planned.name;
        let pipeline = Pipeline::new(PipelineConfig::default()).unwrap();
        let ctx = context(&pipeline, 0.001);
        process_record(files, &format!("file:///data/{name}"), planned, &ctx)
    }

    /// The context of a test source's records under `pipeline`.
    fn context(pipeline: &Pipeline, signal_scale: f32) -> RecordContext<'_> {
        RecordContext {
            pipeline,
            source_name: "test",
            signal_scale,
            seed: 0,
            fractions: SplitFractions::default(),
            verify_checksums: false,
        }
    }

    #[test]
    fn a_known_patient_id_is_prefixed_by_the_source_as_record_ids_are() {
        let mut files = MemorySource::new();
        add_record(&mut files, "mv", &[("II", "1000/mV", 1.0)]);
        let mut known = planned("mv");
        known.patient_id = Some("p9".into());
        let ids = |planned: &PlannedRecord| -> Vec<String> {
            let rows = rows(ingest_planned(&files, planned));
            rows.into_iter().map(|r| r.patient_id).collect()
        };
        assert!(ids(&known).iter().all(|id| id == "test:p9"));
        assert!(ids(&planned("mv")).iter().all(|id| id == "test:mv"));
    }

    /// Adds record `name`: one 10-s signal at 500 Hz per `(description, gain/units)`, format 16,
    /// each an ECG-like 1.2 Hz wave of 1 physical unit times `scale`.
    fn add_record(files: &mut MemorySource, name: &str, signals: &[(&str, &str, f64)]) {
        let n = 5000;
        let mut header = format!("{name} {} 500 {n}\n", signals.len());
        for (description, gain, _) in signals {
            header += &format!("{name}.dat 16 {gain} 16 0 0 0 0 {description}\n");
        }
        let mut data = Vec::new();
        for i in 0..n {
            let t = i as f64 / 500.0;
            let wave = (2.0 * std::f64::consts::PI * 1.2 * t).sin().powi(15);
            for (_, gain, scale) in signals {
                let gain: f64 = gain.split('/').next().unwrap().parse().unwrap();
                let digital = (wave * scale * gain).round() as i16;
                data.extend(digital.to_le_bytes());
            }
        }
        files.insert(format!("{name}.hea"), header.into_bytes());
        files.insert(format!("{name}.dat"), data);
    }

    fn rows(outcome: RecordOutcome) -> Vec<WindowRow> {
        match outcome {
            RecordOutcome::Rows { rows, .. } => rows,
            other => panic!("{other:?}"),
        }
    }

    fn quarantine(outcome: RecordOutcome) -> QuarantineEntry {
        match outcome {
            RecordOutcome::Quarantined(q) => q,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signals_are_converted_to_millivolts_by_their_units() {
        let mut files = MemorySource::new();
        // The same 1-mV wave written in mV, uV and V.
        add_record(&mut files, "mv", &[("II", "1000/mV", 1.0)]);
        add_record(&mut files, "uv", &[("II", "1/uV", 1000.0)]);
        add_record(&mut files, "v", &[("II", "1000000/V", 0.001)]);
        let expected = rows(ingest(&files, "mv"));
        assert!(expected[0].quality_score > 0.0);
        for name in ["uv", "v"] {
            let got = rows(ingest(&files, name));
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                let worst = g
                    .signal
                    .iter()
                    .zip(&e.signal)
                    .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                    .max();
                assert!(worst <= Some(1), "{name}: {worst:?}");
                assert_eq!(g.quality_score, e.quality_score, "{name}");
            }
        }
    }

    #[test]
    fn ecg_leads_not_in_a_voltage_unit_are_left_out_or_quarantined() {
        let mut files = MemorySource::new();
        add_record(&mut files, "mmhg", &[("II", "100/mmHg", 1.0)]);
        let q = quarantine(ingest(&files, "mmhg"));
        assert_eq!(q.kind, "ECG not in a voltage unit");
        assert_eq!(
            q.reason,
            "file:///data/mmhg: no ECG lead is in a voltage unit (uV, mV or V): II (units mmHg)"
        );
        add_record(
            &mut files,
            "mixed",
            &[("I", "1000/mV", 1.0), ("II", "100/NU", 1.0)],
        );
        match ingest(&files, "mixed") {
            RecordOutcome::Rows { rows, partial } => {
                assert_eq!(rows[0].lead_mask[..2], [true, false]);
                assert_eq!(
                    partial.unwrap().dropped_leads,
                    ["II (units NU), not a voltage"]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_single_signal_that_is_not_an_ecg_is_quarantined() {
        let mut files = MemorySource::new();
        add_record(&mut files, "pleth", &[("PLETH", "1000/NU", 1.0)]);
        add_record(&mut files, "abp", &[("ABP", "100/mmHg", 1.0)]);
        add_record(&mut files, "ecg_nu", &[("ECG", "1000/NU", 1.0)]);
        add_record(&mut files, "ecg", &[("ECG", "1000/mV", 1.0)]);
        assert_eq!(
            quarantine(ingest(&files, "pleth")).kind,
            "no standard ECG lead"
        );
        assert_eq!(
            quarantine(ingest(&files, "abp")).kind,
            "no standard ECG lead"
        );
        assert_eq!(
            quarantine(ingest(&files, "ecg_nu")).kind,
            "ECG not in a voltage unit"
        );
        assert!(rows(ingest(&files, "ecg"))[0].lead_mask[0]);
    }

    #[test]
    fn a_huge_gap_segment_quarantines_the_record() {
        let mut files = MemorySource::new();
        add_record(&mut files, "seg", &[("II", "1000/mV", 1.0)]);
        files.insert(
            "big.hea",
            b"big/2 1 500\nseg 5000\n~ 1000000000000\n".to_vec(),
        );
        let q = quarantine(ingest(&files, "big"));
        assert_eq!(q.kind, "bad header");
        assert!(
            q.reason.starts_with("big.hea: bad header line 3: "),
            "{}",
            q.reason
        );
    }

    #[test]
    fn control_characters_of_a_garbage_header_are_escaped_in_the_reason() {
        let mut files = MemorySource::new();
        files.insert("junk.hea", b"junk 1 \x1b[2J\x07 500\nj.dat 16\n".to_vec());
        let q = quarantine(ingest(&files, "junk"));
        assert_eq!(q.kind, "bad header");
        assert!(!q.reason.chars().any(char::is_control), "{:?}", q.reason);
        assert!(q.reason.contains("\\u{1b}[2J\\u{7}"), "{}", q.reason);
    }

    #[test]
    fn a_record_that_panics_the_reader_is_quarantined_with_the_panic() {
        let pipeline = Pipeline::new(PipelineConfig::default()).unwrap();
        let ctx = context(&pipeline, 1.0);
        let planned = PlannedRecord {
            name: "r1".into(),
            record_id: "r1".into(),
            labels: Vec::new(),
            patient_id: None,
            age: None,
            sex: None,
            fold: None,
            header_labels: false,
            header_comments: false,
        };
        let panicking = |name: &str| -> Result<Vec<u8>, WfdbError> { panic!("cannot read {name}") };
        match process_record(&panicking, "file:///data/r1", &planned, &ctx) {
            RecordOutcome::Quarantined(entry) => {
                assert_eq!(
                    (entry.record.as_str(), entry.kind.as_str()),
                    ("r1", "internal error")
                );
                assert_eq!(entry.uri, "file:///data/r1");
                assert!(
                    entry.reason.starts_with("file:///data/r1: ecgfm failed"),
                    "{}",
                    entry.reason
                );
                assert!(
                    entry.reason.ends_with("cannot read r1.hea"),
                    "{}",
                    entry.reason
                );
            }
            other => panic!("{other:?}"),
        }
        let missing = |name: &str| -> Result<Vec<u8>, WfdbError> {
            Err(WfdbError::NotFound { file: name.into() })
        };
        match process_record(&missing, "file:///data/r1", &planned, &ctx) {
            RecordOutcome::Quarantined(entry) => assert_eq!(entry.kind, "file not found"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_unreadable_for_a_reason_outside_the_record_stops_instead_of_quarantining() {
        let mut files = MemorySource::new();
        add_record(&mut files, "r", &[("II", "1000/mV", 1.0)]);
        let failing = |errno: i32| {
            let files = files.clone();
            move |name: &str| -> Result<Vec<u8>, WfdbError> {
                match name.ends_with(".dat") {
                    true => Err(WfdbError::Io {
                        file: name.into(),
                        source: std::io::Error::from_raw_os_error(errno),
                    }),
                    false => files.fetch(name),
                }
            }
        };
        let pipeline = Pipeline::new(PipelineConfig::default()).unwrap();
        let ctx = context(&pipeline, 0.001);
        let uri = "file:///data/r";
        let too_many_files = process_record(&failing(libc::EMFILE), uri, &planned("r"), &ctx);
        match too_many_files {
            RecordOutcome::Unreadable(e) => {
                assert!(
                    e.starts_with("r.dat: cannot read: Too many open files"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        let a_folder = process_record(&failing(libc::EISDIR), uri, &planned("r"), &ctx);
        match a_folder {
            RecordOutcome::Quarantined(entry) => assert_eq!(entry.kind, "read error"),
            other => panic!("{other:?}"),
        }
    }
}
