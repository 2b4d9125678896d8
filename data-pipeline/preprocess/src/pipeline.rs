//! The preprocessing pipeline for one record: lead mapping -> missing-sample bridging ->
//! resampling -> band-pass -> quality checks -> standardisation -> windows.
//!
//! Build a [`Pipeline`] once from a [`PipelineConfig`] (serialisable; the ingest records it in the
//! dataset manifest) and call [`Pipeline::process`] per record, from any number of threads.

use crate::butterworth::butter_bandpass;
use crate::config::PipelineConfig;
use crate::error::PreprocessError;
use crate::gaps::{fill_gaps, GapFill};
use crate::leads::{map_leads, N_LEADS};
use crate::quality::{combine, LeadWindow, QualityChecker};
use crate::record::{ProcessedRecord, RecordReport, Window};
use crate::resample::Resampler;
use crate::sample::Sample;
use crate::sos::SosFilter;
use crate::standardize::standardize;
use crate::windowing::window_spans;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One present lead travelling through the stages.
struct Track {
    slot: usize,
    input: Vec<f64>,
    /// Which `input` samples were missing before [`fill_gaps`] bridged them.
    input_missing: Option<Vec<bool>>,
    raw_len: usize,
    /// The resampled signal, band-passed in place of itself by [`Pipeline::filter_tracks`].
    clean: Vec<f64>,
    high: Option<Vec<f64>>,
    missing: Option<Vec<bool>>,
}

/// The configured pipeline (thread-safe; resamplers are cached per input rate).
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    band_pass: Option<SosFilter>,
    quality: QualityChecker,
    resamplers: Mutex<HashMap<u64, Arc<Resampler>>>,
}

impl Pipeline {
    /// Validates the settings and designs the filters.
    pub fn new(config: PipelineConfig) -> Result<Self, PreprocessError> {
        let rate = config.target_rate_hz;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(PreprocessError::InvalidConfig(format!(
                "target_rate_hz must be positive, got {rate}"
            )));
        }
        // The resampling filter and every window grow with the rate: 100 MHz asks for tens of
        // gigabytes. The highest rate a record may have is also the highest to resample to.
        if rate > MAX_RECORD_RATE_HZ {
            return Err(PreprocessError::InvalidConfig(format!(
                "target_rate_hz must be at most {MAX_RECORD_RATE_HZ} Hz (the highest sampling \
                 rate a record may have), got {rate}"
            )));
        }
        config.window.validate()?;
        config.standardize.validate()?;
        config.resampler.validate()?;
        let band_pass = match &config.band_pass {
            Some(bp) => Some(SosFilter::new(butter_bandpass(
                bp.order, bp.low_hz, bp.high_hz, rate,
            )?)),
            None => None,
        };
        let quality = QualityChecker::new(config.quality.clone(), rate)?;
        Ok(Self {
            config,
            band_pass,
            quality,
            resamplers: Mutex::new(HashMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Processes one record: `signals[i]` (physical units, mV; NaN = missing) is the lead named
    /// `lead_names[i]`, sampled at `rate` Hz.
    pub fn process<T: Sample, S: AsRef<str>, L: AsRef<[T]>>(
        &self,
        rate: f64,
        lead_names: &[S],
        signals: &[L],
    ) -> Result<ProcessedRecord, PreprocessError> {
        check_shape(rate, lead_names.len(), signals)?;
        let mapping = map_leads(lead_names);
        if mapping.source_of.iter().all(Option::is_none) {
            return Err(PreprocessError::NoKnownLeads(
                lead_names.iter().map(|s| s.as_ref().to_string()).collect(),
            ));
        }
        let resampler = self.resampler_for(rate)?;
        let mut report = RecordReport {
            dropped_leads: mapping.dropped.clone(),
            ..RecordReport::default()
        };
        let mut tracks = Vec::new();
        for (slot, source) in mapping.source_of.iter().enumerate() {
            let Some(source) = *source else { continue };
            let sign = if mapping.negated[slot] { -1.0 } else { 1.0 };
            let input: Vec<f64> = signals[source]
                .as_ref()
                .iter()
                .map(|v| sign * v.to_f64())
                .collect();
            match self.prepare_track(slot, input, &resampler) {
                Some(track) => tracks.push(track),
                None => report
                    .empty_leads
                    .push(lead_names[source].as_ref().to_string()),
            }
        }
        if tracks.is_empty() {
            return Err(PreprocessError::AllLeadsMissing);
        }
        self.filter_tracks(&mut tracks);
        report.resampled_samples = tracks[0].raw_len;
        let windows = self.cut_windows(&mut tracks, rate, &mut report);
        if windows.is_empty() {
            return Err(PreprocessError::AllWindowsFailed {
                windows: report.hard_failed_windows,
            });
        }
        Ok(ProcessedRecord { windows, report })
    }

    /// Bridges gaps and resamples one lead (into `clean`, filtered later by
    /// [`Self::filter_tracks`]); `None` when it is all missing.
    fn prepare_track(
        &self,
        slot: usize,
        mut input: Vec<f64>,
        resampler: &Resampler,
    ) -> Option<Track> {
        let (input_missing, missing) = match fill_gaps(&mut input) {
            GapFill::Complete => (None, None),
            GapFill::Filled(mask) => {
                let resampled = resampler.resample_mask(&mask);
                (Some(mask), Some(resampled))
            }
            GapFill::AllMissing => return None,
        };
        let raw = resampler.resample(&input);
        Some(Track {
            slot,
            input,
            input_missing,
            raw_len: raw.len(),
            clean: raw,
            high: None,
            missing,
        })
    }

    /// High-passes (for the noise check) and band-passes the resampled leads, all leads together.
    fn filter_tracks(&self, tracks: &mut [Track]) {
        let raws: Vec<&[f64]> = tracks.iter().map(|t| t.clean.as_slice()).collect();
        let highs = self.quality.high_bands(&raws);
        let cleans = self.band_pass.as_ref().map(|f| f.filtfilt_many(&raws));
        for (track, high) in tracks.iter_mut().zip(highs) {
            track.high = high;
        }
        for (track, clean) in tracks.iter_mut().zip(cleans.into_iter().flatten()) {
            track.clean = clean;
        }
    }

    /// Quality per window, then standardisation, then the window tensors.
    fn cut_windows(
        &self,
        tracks: &mut [Track],
        input_rate: f64,
        report: &mut RecordReport,
    ) -> Vec<Window> {
        let spans = window_spans(report.resampled_samples, &self.config.window);
        let to_input = input_rate / self.config.target_rate_hz;
        let verdicts: Vec<_> = spans
            .iter()
            .map(|span| {
                let range = span.start..span.start + span.n_valid;
                let n_input = tracks[0].input.len();
                let input_start =
                    ((span.start as f64 * to_input).floor() as usize).min(n_input - 1);
                let input_end =
                    ((range.end as f64 * to_input).ceil() as usize).clamp(input_start + 1, n_input);
                let mut leads = [None; N_LEADS];
                for t in tracks.iter() {
                    leads[t.slot] = Some(self.quality.assess(&LeadWindow {
                        input: &t.input[input_start..input_end],
                        input_missing: t.input_missing.as_ref().map(|m| &m[input_start..input_end]),
                        input_rate,
                        clean: &t.clean[range.clone()],
                        high: t.high.as_ref().map(|h| &h[range.clone()]),
                        missing: t.missing.as_ref().map(|m| &m[range.clone()]),
                    }));
                }
                combine(&leads)
            })
            .collect();
        let mut cleans: Vec<Vec<f64>> = tracks
            .iter_mut()
            .map(|t| std::mem::take(&mut t.clean))
            .collect();
        let missing: Vec<Option<Vec<bool>>> = tracks.iter_mut().map(|t| t.missing.take()).collect();
        standardize(&mut cleans, &missing, &self.config.standardize);
        let mut lead_mask = [false; N_LEADS];
        tracks.iter().for_each(|t| lead_mask[t.slot] = true);
        let w = self.config.window.window_samples;
        let mut windows = Vec::with_capacity(spans.len());
        for (window_index, (span, verdict)) in spans.iter().zip(verdicts).enumerate() {
            if verdict.hard_fail && self.config.drop_hard_failed_windows {
                report.hard_failed_windows += 1;
                continue;
            }
            let mut signal = vec![0.0f32; N_LEADS * w];
            for ((t, clean), miss) in tracks.iter().zip(&cleans).zip(&missing) {
                let row = &mut signal[t.slot * w..t.slot * w + span.n_valid];
                let src = &clean[span.start..span.start + span.n_valid];
                row.iter_mut().zip(src).for_each(|(d, s)| *d = *s as f32);
                if let Some(miss) = miss {
                    let miss = &miss[span.start..span.start + span.n_valid];
                    row.iter_mut()
                        .zip(miss)
                        .filter(|(_, m)| **m)
                        .for_each(|(d, _)| *d = 0.0);
                }
            }
            windows.push(Window {
                window_index,
                start_sample: span.start,
                n_valid: span.n_valid,
                lead_mask,
                signal,
                quality_score: verdict.score,
                quality_flags: verdict.flags,
                hard_fail: verdict.hard_fail,
            });
        }
        windows
    }

    /// The cached resampler from `rate` to the target rate.
    fn resampler_for(&self, rate: f64) -> Result<Arc<Resampler>, PreprocessError> {
        let mut cache = self.resamplers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache.get(&rate.to_bits()) {
            return Ok(Arc::clone(r));
        }
        let built = Arc::new(Resampler::new(
            rate,
            self.config.target_rate_hz,
            &self.config.resampler,
        )?);
        cache.insert(rate.to_bits(), Arc::clone(&built));
        Ok(built)
    }
}

/// Lowest record sampling rate accepted, in Hz: slower is no ECG, and upsampling it to the
/// target rate would multiply the record's length.
pub const MIN_RECORD_RATE_HZ: f64 = 1.0;
/// Highest record sampling rate accepted, in Hz: the resampling filter's length grows with the
/// rate (a header claiming 1 GHz would ask for gigabytes of taps).
pub const MAX_RECORD_RATE_HZ: f64 = 100_000.0;

/// Rejects a rate outside [`MIN_RECORD_RATE_HZ`]..=[`MAX_RECORD_RATE_HZ`] (or not a number), a
/// names/signals count mismatch, unequal lengths and empty records.
fn check_shape<T, L: AsRef<[T]>>(
    rate: f64,
    names: usize,
    signals: &[L],
) -> Result<(), PreprocessError> {
    if !(MIN_RECORD_RATE_HZ..=MAX_RECORD_RATE_HZ).contains(&rate) {
        return Err(PreprocessError::InvalidSamplingRate(rate));
    }
    if names != signals.len() {
        return Err(PreprocessError::LeadCountMismatch {
            names,
            signals: signals.len(),
        });
    }
    let n = signals.first().map_or(0, |s| s.as_ref().len());
    if let Some((lead, s)) = signals
        .iter()
        .enumerate()
        .find(|(_, s)| s.as_ref().len() != n)
    {
        return Err(PreprocessError::LeadLengthMismatch {
            lead,
            expected: n,
            found: s.as_ref().len(),
        });
    }
    if n == 0 {
        return Err(PreprocessError::EmptyRecord);
    }
    Ok(())
}
