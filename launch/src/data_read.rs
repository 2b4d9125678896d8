//! `ecgfm data read RECORD`: a WFDB record's samples as CSV, like WFDB's `rdsamp`.

use anyhow::{Context, Result};
use clap::Args;
use ecgfm_wfdb::{read_record_with, write_rdsamp_csv, DirSource, ReadOptions, WfdbError};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct ReadArgs {
    /// Record path without extension, e.g. ../shared/data/wfdb-formats/100.
    pub record: PathBuf,
    /// Stored integers instead of physical units.
    #[arg(long)]
    pub digital: bool,
    /// Write the CSV here instead of standard output.
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Read records whose header checksums are wrong (CinC 2017 headers hold 0).
    #[arg(long)]
    pub ignore_checksums: bool,
}

/// Runs `ecgfm data read`.
pub fn run(args: &ReadArgs) -> Result<()> {
    let given = args.record.to_string_lossy();
    if given.contains("://") {
        anyhow::bail!(
            "data read reads a record on this machine, not {}: copy its .hea and signal files \
             here first, or ingest its folder with `ecgfm data ingest URL`, which reads object \
             stores",
            ecgfm_data::store::redact_url(&given)
        );
    }
    let record_path = args.record.with_extension("");
    let dir = record_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = record_path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} is not a record path", args.record.display()))?;
    let options = ReadOptions {
        ignore_checksums: args.ignore_checksums,
        ..ReadOptions::default()
    };
    let record = read_record_with(&DirSource::new(dir), name, &options).map_err(|e| {
        // Some databases' headers carry stale checksums (CinC 2017's say 0): say how to read on.
        let hint = match e {
            WfdbError::ChecksumMismatch { .. } => " (--ignore-checksums reads it anyway)",
            _ => "",
        };
        anyhow::Error::new(e).context(format!("reading record {}{hint}", args.record.display()))
    })?;
    match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut writer = BufWriter::new(file);
            write_rdsamp_csv(&record, args.digital, &mut writer)
                .and_then(|_| writer.flush())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut writer = BufWriter::new(stdout.lock());
            let written =
                write_rdsamp_csv(&record, args.digital, &mut writer).and_then(|_| writer.flush());
            // A closed pipe (`ecgfm data read R | head`) is the reader's choice, not an error.
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("writing CSV to standard output")?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_in_an_object_store_is_refused_saying_what_reads_it() {
        let args = ReadArgs {
            record: PathBuf::from("s3://user:TOKEN@raw/cinc/A00001"),
            digital: false,
            out: None,
            ignore_checksums: false,
        };
        let err = run(&args).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "data read reads a record on this machine, not s3://***@raw/cinc/A00001"
            ) && err.contains("ecgfm data ingest URL"),
            "{err}"
        );
    }
}
