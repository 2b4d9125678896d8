//! Training metrics: `metrics.jsonl` in the run directory, one JSON object per logged step, and
//! the same scalars as TensorBoard events (`events.out.tfevents.*`, see `tensorboard.rs`; view
//! them with `tensorboard --logdir runs/`).
//!
//! On resume `metrics.jsonl` is cut back to the checkpoint's step, so a run that was killed and
//! resumed has the same records (apart from timings) as a run that never stopped. Each process
//! writes a new event file that starts with a session start at the resume step, so TensorBoard
//! shows the same curve (`tensorboard.rs` says how its two loaders treat the repeated steps).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::tensorboard::EventWriter;
use crate::write_whole::write_whole;

const GIB: f32 = (1u64 << 30) as f32;

/// One logged step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    /// Mean training loss of the step's micro-batches (`null` in the file when not finite: the
    /// step was skipped).
    #[serde(deserialize_with = "null_as_nan")]
    pub loss: f32,
    pub lr: f32,
    /// Global gradient norm before clipping.
    #[serde(deserialize_with = "null_as_nan")]
    pub grad_norm: f32,
    /// Throughput since the previous record.
    pub samples_per_s: f64,
    /// Wall-clock seconds of training so far (across resumes).
    pub elapsed_s: f64,
    pub samples_seen: u64,
    /// Training FLOPs so far, counted from the leads present in each batch (see
    /// `TrainingState::flops`); absent after a resume from a checkpoint that did not count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops: Option<f64>,
    /// Validation loss measured after this step (`validation.rs`), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f32>,
    /// Each source's validation loss, measured with `val_loss` on a dataset of several sources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub val_loss_by_source: BTreeMap<String, f32>,
    /// Device memory in use (GPU runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_mem_bytes: Option<u64>,
}

/// An I/O error whose message names the file `path` it happened on.
pub(crate) fn naming(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error {
    let path = path.display().to_string();
    move |e| std::io::Error::new(e.kind(), format!("{path}: {e}"))
}

/// JSON has no NaN: serde_json writes a non-finite float as `null`, read back here as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

/// Appends step records to `metrics.jsonl` and to a TensorBoard event file.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
    events: EventWriter,
}

impl MetricsWriter {
    /// Opens the run's metrics file, keeping only the records of the first `steps_done` steps
    /// (record `step` is 0-based: the record of step s is kept when s < steps_done).
    pub fn open(run_dir: &Path, steps_done: u64) -> std::io::Result<MetricsWriter> {
        let path = run_dir.join("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        // The kept lines as they were written: parsed only for their step, never rewritten
        // (serde_json's float parsing may be a unit in the last place off, and printing that
        // back would change what the run logged).
        #[derive(Deserialize)]
        struct Step {
            step: u64,
        }
        let kept: String = (text.lines())
            .filter(|line| serde_json::from_str::<Step>(line).is_ok_and(|r| r.step < steps_done))
            .map(|line| format!("{line}\n"))
            .collect();
        // Written whole: a run killed in between keeps its old file.
        write_whole(&path, kept.as_bytes()).map_err(naming(&path))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(naming(&path))?;
        let events = EventWriter::create(run_dir, Some(steps_done))?;
        Ok(MetricsWriter { path, file, events })
    }

    pub fn write(&mut self, record: &StepRecord) -> std::io::Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(record)?)?;
        self.file.flush()?;
        let mut scalars = vec![
            ("train/loss", record.loss),
            ("train/lr", record.lr),
            ("train/grad_norm", record.grad_norm),
            ("perf/samples_per_s", record.samples_per_s as f32),
        ];
        scalars.extend(record.val_loss.map(|v| ("val/loss", v)));
        let by_source: Vec<(String, f32)> = record
            .val_loss_by_source
            .iter()
            .map(|(source, &v)| (format!("val/loss/{source}"), v))
            .collect();
        scalars.extend(by_source.iter().map(|(tag, v)| (tag.as_str(), *v)));
        if let Some(bytes) = record.gpu_mem_bytes {
            scalars.push(("perf/gpu_mem_gib", bytes as f32 / GIB));
        }
        let events_path = self.events.path().to_path_buf();
        (self.events.scalars(record.step, &scalars)).map_err(naming(&events_path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads every record of a metrics file; a torn last line (a run killed mid-write) is skipped.
pub fn read_records(path: &Path) -> std::io::Result<Vec<StepRecord>> {
    let reader = BufReader::new(File::open(path)?);
    let mut records = Vec::new();
    for line in reader.lines() {
        if let Ok(record) = serde_json::from_str::<StepRecord>(&line?) {
            records.push(record);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64) -> StepRecord {
        StepRecord {
            step,
            loss: 0.5,
            lr: 1e-3,
            grad_norm: 1.0,
            samples_per_s: 10.0,
            elapsed_s: 1.0,
            samples_seen: 4 * step,
            flops: None,
            val_loss: None,
            val_loss_by_source: BTreeMap::new(),
            gpu_mem_bytes: None,
        }
    }

    /// Device memory goes to TensorBoard in GiB (`perf/gpu_mem_gib`); metrics.jsonl keeps bytes.
    #[test]
    fn gpu_memory_is_logged_in_gib() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let mut writer = MetricsWriter::open(run, 0).unwrap();
        let logged = StepRecord {
            gpu_mem_bytes: Some(3 << 29),
            ..record(7)
        };
        writer.write(&logged).unwrap();
        let events = crate::tensorboard::read_back::read_events(writer.events.path());
        let last = events.last().unwrap();
        assert_eq!(last.step, 7);
        assert!(
            last.scalars
                .contains(&("perf/gpu_mem_gib".to_string(), 1.5)),
            "{last:?}"
        );
        assert_eq!(read_records(writer.path()).unwrap(), [logged]);
    }

    /// A skipped step's non-finite loss and gradient norm are written as `null` and read back as
    /// NaN, not as a number (0 would read as a perfect step).
    #[test]
    fn non_finite_values_read_back_as_nan() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let mut writer = MetricsWriter::open(run, 0).unwrap();
        let skipped = StepRecord {
            loss: f32::INFINITY,
            grad_norm: f32::NAN,
            ..record(3)
        };
        writer.write(&skipped).unwrap();
        let text = std::fs::read_to_string(writer.path()).unwrap();
        assert!(text.contains("\"loss\":null,") && text.contains("\"grad_norm\":null,"));
        let read = read_records(writer.path()).unwrap();
        assert!(
            read[0].loss.is_nan() && read[0].grad_norm.is_nan(),
            "{read:?}"
        );
    }

    /// Reading a metrics file skips a torn last line (a run killed mid-write), keeping the rest.
    #[test]
    fn a_torn_last_line_is_skipped_when_reading() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let path = run.join("metrics.jsonl");
        let whole = serde_json::to_string(&record(1)).unwrap();
        std::fs::write(&path, format!("{whole}\n{whole}\n{{\"step\":3,\"lo")).unwrap();
        assert_eq!(read_records(&path).unwrap(), [record(1), record(1)]);
    }

    #[test]
    fn a_resume_keeps_the_earlier_lines_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        // Floats as another writer might print them (a trailing zero, 17 digits): parsed and
        // printed again they would read 1.5 and 394.1273060758174.
        let line = |step: u64| {
            format!(
                "{{\"step\":{step},\"loss\":1.50,\"lr\":0.001,\"grad_norm\":0.5,\"samples_per_s\":\
                 394.12730607581733,\"elapsed_s\":1.0,\"samples_seen\":4}}"
            )
        };
        let old = format!("{}\n{}\n{}\n{{\"step\":3,\"lo", line(0), line(1), line(2));
        std::fs::write(run.join("metrics.jsonl"), &old).unwrap();
        drop(MetricsWriter::open(run, 2).unwrap());
        let kept = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        assert_eq!(kept, format!("{}\n{}\n", line(0), line(1)));
    }
}
