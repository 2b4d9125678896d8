//! Writes a record as CSV like PhysioNet's `rdsamp`: a header row of signal names, then one row
//! per frame in physical units (or digital values), missing samples as empty fields.
//!
//! Signals with several samples per frame are averaged over the frame (as `rdsamp` without
//! `-H`) with integer division, truncating toward zero as WFDB's `getvec` and the `wfdb`
//! package do; physical values are converted from that digital mean. A frame with a missing
//! sample is missing.

use std::io::Write;

use crate::record::Record;

/// Writes `record` to `w` as CSV: physical units, or digital values when `digital` is true.
pub fn write_rdsamp_csv(record: &Record, digital: bool, w: impl Write) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(w);
    let names: Vec<String> = record
        .signals
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.description.is_empty() {
                format!("sig{i}")
            } else {
                csv_field(&s.description)
            }
        })
        .collect();
    writeln!(w, "{}", names.join(","))?;
    for frame in 0..record.n_samples {
        for (sig, spec) in record.signals.iter().enumerate() {
            if sig > 0 {
                w.write_all(b",")?;
            }
            let spf = spec.samples_per_frame;
            let samples = &record.digital[sig][frame * spf..(frame + 1) * spf];
            if samples.iter().any(|&d| Some(d) == spec.invalid_code()) {
                continue;
            }
            let sum: i64 = samples.iter().map(|&d| i64::from(d)).sum();
            let mean = sum / spf as i64;
            if digital {
                write!(w, "{mean}")?;
            } else {
                let value = (mean as f64 - f64::from(spec.baseline)) / spec.gain();
                write!(w, "{value}")?;
            }
        }
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Quotes a CSV field when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
