//! TensorBoard scalars: an `events.out.tfevents.*` file that `tensorboard --logdir runs/` reads.
//!
//! The format is small enough to write by hand: a file of TFRecords (u64 length, masked CRC-32C
//! of the length, the bytes, masked CRC-32C of the bytes), each holding one protobuf `Event`
//! (tensorflow/core/util/event.proto). The first event names the file version; in a training
//! run's file the second is a `SessionLog` START at the step training starts from, which makes
//! TensorBoard's Python loader drop what earlier files logged, under every tag, from that step on
//! (the steps a resumed run repeats; its default loader instead replaces, tag by tag, the points
//! of a step logged again). An evaluation's file has none: each evaluation of a checkpoint adds
//! its own tags at that checkpoint's step, and a START there would drop the earlier
//! evaluations' (it did until 2026-12-06). Every later event carries a step and a `Summary` of
//! `(tag, simple_value)` pairs. Only the protobuf fields used here are encoded:
//!
//! | message | field | number, wire type |
//! |---|---|---|
//! | Event | wall_time (double) | 1, fixed64 |
//! | Event | step (int64) | 2, varint |
//! | Event | file_version (string) | 3, length-delimited |
//! | Event | summary (Summary) | 5, length-delimited |
//! | Event | session_log (SessionLog) | 7, length-delimited |
//! | SessionLog | status (enum, START = 1) | 1, varint |
//! | Summary | value (repeated Value) | 1, length-delimited |
//! | Summary.Value | tag (string) | 1, length-delimited |
//! | Summary.Value | simple_value (float) | 2, fixed32 |
//!
//! (The `tensorboard-rs` crate does the same, but panics on I/O errors in a background thread
//! and pulls in an old image-codec stack; this file is the whole of what we need.)

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends scalar events to one event file.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Creates a new event file in `dir` (a fresh one per process, named so that later files
    /// sort after earlier ones): for training that starts at step `start` (`Some`), or for
    /// scalars that add to what earlier files logged (`None`: no `SessionLog` START).
    pub fn create(dir: &Path, start: Option<u64>) -> std::io::Result<EventWriter> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "events.out.tfevents.{:010}.{:09}.ecgfm.{}",
            now.as_secs(),
            now.subsec_nanos(),
            std::process::id()
        );
        let path = dir.join(name);
        let named = crate::metrics::naming(&path);
        let mut writer = EventWriter {
            file: BufWriter::new(File::create(&path).map_err(&named)?),
            path,
        };
        let mut version = event_header(0);
        field_bytes(&mut version, 3, b"brain.Event:2");
        writer.record(&version).map_err(&named)?;
        if let Some(step) = start {
            let mut start = event_header(step);
            field_bytes(&mut start, 7, &[1 << 3, 1]);
            writer.record(&start).map_err(&named)?;
        }
        writer.file.flush().map_err(&named)?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event holding every `(tag, value)` at `step`, and flushes it to the file.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f32)]) -> std::io::Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut entry = Vec::new();
            field_bytes(&mut entry, 1, tag.as_bytes());
            varint(&mut entry, (2 << 3) | 5);
            entry.extend_from_slice(&value.to_le_bytes());
            field_bytes(&mut summary, 1, &entry);
        }
        let mut event = event_header(step);
        field_bytes(&mut event, 5, &summary);
        self.record(&event)?;
        self.file.flush()
    }

    /// Frames `data` as one TFRecord.
    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let length = (data.len() as u64).to_le_bytes();
        self.file.write_all(&length)?;
        self.file.write_all(&masked_crc32c(&length).to_le_bytes())?;
        self.file.write_all(data)?;
        self.file.write_all(&masked_crc32c(data).to_le_bytes())
    }
}

/// The start of an `Event`: wall time now, and `step`.
fn event_header(step: u64) -> Vec<u8> {
    let wall_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut event = Vec::new();
    varint(&mut event, (1 << 3) | 1);
    event.extend_from_slice(&wall_time.to_le_bytes());
    varint(&mut event, 2 << 3);
    varint(&mut event, step);
    event
}

/// A length-delimited field (wire type 2).
fn field_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, (number << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A base-128 varint.
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), rotated and offset as TFRecord does.
fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| {
        CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

#[cfg(test)]
pub(crate) mod read_back;

#[cfg(test)]
mod tests {
    use super::read_back::{read_events, ReadEvent};
    use super::*;

    /// A training file holds the version event, a SessionLog START at the step training starts
    /// from, then one event per `scalars` call with its step, tags and values.
    #[test]
    fn a_training_file_starts_at_its_step_and_holds_the_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path(), Some(300)).unwrap();
        writer
            .scalars(300, &[("train/loss", 0.75), ("train/lr", 1e-4)])
            .unwrap();
        writer.scalars(1 << 40, &[("val/loss", -2.5)]).unwrap();
        let events = read_events(writer.path());
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        assert!(events[1].session_start && events[1].step == 300);
        let tags = |e: &ReadEvent| (e.step, e.scalars.clone());
        let owned =
            |pairs: &[(&str, f32)]| pairs.iter().map(|&(t, v)| (t.to_string(), v)).collect();
        assert_eq!(
            tags(&events[2]),
            (300, owned(&[("train/loss", 0.75), ("train/lr", 1e-4)]))
        );
        assert_eq!(tags(&events[3]), (1 << 40, owned(&[("val/loss", -2.5)])));
    }

    /// An evaluation's file (no start step) has no SessionLog START: one would make TensorBoard
    /// drop what earlier evaluations logged at the same or later steps.
    #[test]
    fn an_evaluation_file_has_no_session_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path(), None).unwrap();
        writer.scalars(500, &[("eval/auroc", 0.9)]).unwrap();
        let events = read_events(writer.path());
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| !e.session_start));
        assert_eq!(events[1].scalars, [("eval/auroc".to_string(), 0.9)]);
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_encode_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
    }

    /// A value of exactly 2^7k takes k + 1 bytes: 128 (a step, a record's length) is not a
    /// single byte with the continuation bit set.
    #[test]
    fn varints_at_group_boundaries() {
        for (value, bytes) in [
            (127u64, &[0x7F][..]),
            (128, &[0x80, 0x01]),
            (16_384, &[0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
        }
    }
}
