//! The public entry points: one record as a pure function of `(config, seed, index)`, either into
//! a caller's buffer (training hot path) or as an owned [`SynthRecord`].

use crate::condition::Condition;
use crate::config::SynthConfig;
use crate::dipole::render_beats;
use crate::fibrillation::FibrillatoryWaves;
use crate::leads::{derive_limb_leads, project, DIPOLE_ROWS, LEAD_NAMES};
use crate::morphology::Morphology;
use crate::noise::add_noise;
use crate::rhythm::Rhythm;
use crate::rng::{Rng, Stream};

/// Everything known about a record besides its signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordMeta {
    pub condition: Condition,
    /// Mean ventricular rate over the R peaks inside the record, bpm.
    pub heart_rate_bpm: f32,
    /// Years.
    pub age: f32,
    /// `'M'` or `'F'`.
    pub sex: char,
}

/// One synthetic 12-lead ECG.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthRecord {
    pub index: u64,
    pub condition: Condition,
    /// Mean ventricular rate over the R peaks inside the record, bpm.
    pub heart_rate_bpm: f32,
    pub age: f32,
    pub sex: char,
    pub sampling_rate: f32,
    pub samples: usize,
    /// `(12, samples)` lead-major in [`LEAD_NAMES`] order, millivolts.
    pub signal: Vec<f32>,
}

impl SynthRecord {
    /// The samples of lead `lead` (index into [`LEAD_NAMES`]).
    pub fn lead(&self, lead: usize) -> &[f32] {
        &self.signal[lead * self.samples..(lead + 1) * self.samples]
    }

    /// Record name in datasets, e.g. `synth-000042`.
    pub fn record_id(&self) -> String {
        format!("synth-{:06}", self.index)
    }
}

/// Generates record `index` of the stream `seed` as an owned record.
///
/// # Panics
/// If `cfg.validate()` fails.
pub fn generate(cfg: &SynthConfig, seed: u64, index: u64) -> SynthRecord {
    let mut signal = vec![0.0f32; LEAD_NAMES.len() * cfg.samples];
    let meta = generate_into_with_meta(cfg, seed, index, &mut signal);
    SynthRecord {
        index,
        condition: meta.condition,
        heart_rate_bpm: meta.heart_rate_bpm,
        age: meta.age,
        sex: meta.sex,
        sampling_rate: cfg.sampling_rate,
        samples: cfg.samples,
        signal,
    }
}

/// Writes the signal of record `index` into `out` (`12 * cfg.samples`, lead-major, mV; previous
/// contents are ignored) and returns its condition. Bitwise identical to `generate(..).signal`.
///
/// # Panics
/// If `cfg.validate()` fails or `out.len() != 12 * cfg.samples`.
pub fn generate_into(cfg: &SynthConfig, seed: u64, index: u64, out: &mut [f32]) -> Condition {
    generate_into_with_meta(cfg, seed, index, out).condition
}

/// [`generate_into`] that also returns the record's metadata (rate, age, sex).
///
/// # Panics
/// As [`generate_into`].
pub fn generate_into_with_meta(
    cfg: &SynthConfig,
    seed: u64,
    index: u64,
    out: &mut [f32],
) -> RecordMeta {
    if let Err(error) = cfg.validate() {
        panic!("{error}");
    }
    let samples = cfg.samples;
    assert_eq!(
        out.len(),
        LEAD_NAMES.len() * samples,
        "output buffer must hold 12 leads of {samples} samples"
    );
    let fs = cfg.sampling_rate as f64;

    let mut meta_rng = Rng::for_record(seed, index, Stream::Meta);
    let condition = Condition::all()[meta_rng.weighted_index(&cfg.condition_weights)];
    let sex = if meta_rng.chance(0.5) { 'M' } else { 'F' };
    let age = match condition {
        Condition::AtrialFibrillation => meta_rng.uniform(50.0, 92.0),
        _ => meta_rng.uniform(18.0, 90.0),
    };
    let resp_hz = meta_rng.uniform(0.15, 0.35);
    let [low_bpm, high_bpm] = cfg.heart_rate_bpm.map(f64::from);
    let mean_bpm = match condition {
        Condition::AtrialFibrillation => meta_rng.uniform(70.0, 140.0),
        _ => meta_rng.uniform(low_bpm, high_bpm),
    };

    let morphology = Morphology::draw(
        condition,
        sex,
        &mut Rng::for_record(seed, index, Stream::Morphology),
    );
    let rhythm = Rhythm::draw(
        condition,
        mean_bpm,
        resp_hz,
        &mut Rng::for_record(seed, index, Stream::Rhythm),
    );

    out.fill(0.0);
    let heart_rate_bpm = {
        let mut rows =
            out[DIPOLE_ROWS[0] * samples..(DIPOLE_ROWS[2] + 1) * samples].chunks_exact_mut(samples);
        let (x, y, z) = (
            rows.next().unwrap(),
            rows.next().unwrap(),
            rows.next().unwrap(),
        );
        let beat_rng = Rng::for_record(seed, index, Stream::Beats);
        let bpm = render_beats(
            rhythm.beats(cfg.duration_s(), beat_rng),
            &morphology,
            fs,
            [&mut *x, &mut *y, &mut *z],
            60.0 / rhythm.mean_rr_s(),
        );
        if condition == Condition::AtrialFibrillation {
            FibrillatoryWaves::draw(&mut Rng::for_record(seed, index, Stream::Fibrillation))
                .render(fs, [x, y, z]);
        }
        bpm
    };
    project(out, samples);
    add_noise(
        &cfg.noise,
        resp_hz,
        fs,
        &mut Rng::for_record(seed, index, Stream::Noise),
        out,
        samples,
    );
    derive_limb_leads(out, samples);

    RecordMeta {
        condition,
        heart_rate_bpm: heart_rate_bpm as f32,
        age: age as f32,
        sex,
    }
}
