//! Every setting of an ingest run (`IngestOptions`, serde with defaults) and the run's result
//! (`IngestReport`).

use std::fmt;

use ecgfm_preprocess::PipelineConfig;
use serde::{Deserialize, Serialize};

use crate::manifest::{Counts, DEFAULT_ROW_GROUP_ROWS};
use crate::split::SplitFractions;

/// How the records of a source are found and labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Decide from the files: `ptbxl_database.csv` -> ptbxl, `REFERENCE.csv` -> cinc2017,
    /// `# Dx:` header comments -> cinc2021, else plain WFDB.
    Auto,
    /// Every `.hea` record of the folder; labels from `# Dx:` comments when present.
    Wfdb,
    /// PTB-XL: `ptbxl_database.csv` + `scp_statements.csv`, folds and patient ids.
    Ptbxl,
    /// PhysioNet/CinC 2017: `REFERENCE.csv`.
    Cinc2017,
    /// PhysioNet/CinC 2020/2021: `# Dx/# Age/# Sex` header comments (a folder with another
    /// format's label table, or no `# Dx:` line in any header, is refused).
    Cinc2021,
}

impl SourceFormat {
    /// The name used on the command line and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Auto => "auto",
            SourceFormat::Wfdb => "wfdb",
            SourceFormat::Ptbxl => "ptbxl",
            SourceFormat::Cinc2017 => "cinc2017",
            SourceFormat::Cinc2021 => "cinc2021",
        }
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(SourceFormat::Auto),
            "wfdb" => Ok(SourceFormat::Wfdb),
            "ptbxl" | "ptb-xl" => Ok(SourceFormat::Ptbxl),
            "cinc2017" => Ok(SourceFormat::Cinc2017),
            "cinc2021" | "cinc2020" => Ok(SourceFormat::Cinc2021),
            other => Err(format!(
                "unknown format {other:?} (expected wfdb, ptbxl, cinc2017, cinc2021 or auto)"
            )),
        }
    }
}

/// Every setting of `ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestOptions {
    /// Folder or object-store URL holding the source records.
    pub source: String,
    pub format: SourceFormat,
    /// Name of the source in rows and the manifest; the detected format's name when `None`.
    pub source_name: Option<String>,
    /// Dataset folder or object-store URL to write.
    pub out: String,
    /// Explicit object-store settings for the output (`aws_endpoint`, ...), on top of the
    /// environment. Never logged.
    #[serde(skip_serializing)]
    pub out_store_options: Vec<(String, String)>,
    /// Explicit object-store settings for the source.
    #[serde(skip_serializing)]
    pub source_store_options: Vec<(String, String)>,
    /// Resampling, band-pass, standardisation, window, stride and quality settings.
    pub preprocessing: PipelineConfig,
    /// Target size of one shard; a shard closes at the first record boundary past it.
    pub shard_target_bytes: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
    /// CSV (`record,labels[,patient_id,age,sex]`, labels `;`-separated) replacing the labels
    /// of the records it lists.
    pub label_csv: Option<String>,
    /// File (path or URL) listing the records to ingest, one per line or a CSV's `record`
    /// column; the others are left out (`record_list.rs`). Not serialised when absent, so the
    /// journals of runs without it keep their fingerprints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// File (path or URL) listing records to leave out, as `records` lists them; applied after
    /// it. Not serialised when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// Check WFDB header checksums (a mismatch quarantines the record). Never done for CinC 2017,
    /// whose headers hold a placeholder checksum of 0.
    pub verify_checksums: bool,
    /// Worker threads for reading and preprocessing; 0 = one per core.
    pub threads: usize,
    pub split_fractions: SplitFractions,
    /// Seed of the patient-hash split.
    pub seed: u64,
    /// Ingest only the first N records of the (sorted) plan, after `records` and `exclude`.
    pub limit: Option<usize>,
    /// Stop after writing this many shards in this run (the journal lets a later run resume).
    pub stop_after_shards: Option<usize>,
}

/// Default shard size: 128 MiB.
pub const DEFAULT_SHARD_TARGET_BYTES: u64 = 128 * 1024 * 1024;

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            source: String::new(),
            format: SourceFormat::Auto,
            source_name: None,
            out: String::new(),
            out_store_options: Vec::new(),
            source_store_options: Vec::new(),
            preprocessing: PipelineConfig::default(),
            shard_target_bytes: DEFAULT_SHARD_TARGET_BYTES,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            zstd_level: 3,
            label_csv: None,
            records: None,
            exclude: None,
            verify_checksums: true,
            threads: 0,
            split_fractions: SplitFractions::default(),
            seed: 0,
            limit: None,
            stop_after_shards: None,
        }
    }
}

/// What an ingest run did.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestReport {
    /// The format used (the detected one for `auto`).
    pub format: SourceFormat,
    /// Records in the plan (after `records`, `exclude` and `limit`).
    pub records_planned: u64,
    /// Records with at least one row in the dataset.
    pub records_ingested: u64,
    /// Records quarantined.
    pub records_quarantined: u64,
    /// Records ingested without some of their leads or windows (the manifest's `partial`).
    pub records_partial: u64,
    /// Shards of the dataset (all runs).
    pub shards: u64,
    /// Shards written by this run (resumed ones excluded).
    pub shards_written: u64,
    /// Shards kept from an earlier, interrupted run.
    pub shards_resumed: u64,
    /// Shards another writer's earlier attempt left in the folder beyond this dataset's (a
    /// killed `data synth` or merge), removed when the dataset was complete.
    pub shards_removed: u64,
    /// False when the run stopped early (`stop_after_shards`): no manifest yet.
    pub complete: bool,
    /// Totals (rows, records, labels, splits, quarantine reasons).
    pub counts: Counts,
    /// What the user should know: the plan's warnings, names of an exclusion list the source
    /// lacks, the output lock's note.
    pub warnings: Vec<String>,
}

/// The summary `ecgfm data ingest` prints: the counts, any shards removed, the quarantine by
/// reason, the records kept in part, the warnings, and how to finish a run that stopped early.
impl fmt::Display for IngestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} records planned, {} ingested, {} quarantined | {} rows in {} shards ({} \
             written now, {} kept from an earlier run)",
            self.format,
            self.records_planned,
            self.records_ingested,
            self.records_quarantined,
            self.counts.rows,
            self.shards,
            self.shards_written,
            self.shards_resumed
        )?;
        if self.shards_removed > 0 {
            writeln!(f, "{}", removed_shards_note(self.shards_removed))?;
        }
        for (reason, count) in &self.counts.quarantine {
            writeln!(f, "  quarantined {count:>5}: {reason}")?;
        }
        if self.records_partial > 0 {
            writeln!(
                f,
                "  kept in part {:>4}: without their non-ECG leads or their windows failing the \
                 hard quality rule",
                self.records_partial
            )?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        if !self.complete {
            writeln!(
                f,
                "stopped early after {} shards; run the same command again to finish",
                self.shards_written
            )?;
        }
        Ok(())
    }
}

/// The line saying that `n` shards an earlier attempt left in a dataset's folder were removed
/// (`shard_writer::remove_unlisted_shards`); ingest, merge and synth print it.
pub fn removed_shards_note(n: u64) -> String {
    format!(
        "removed {n} shard files an earlier attempt had left in the folder beyond this dataset's"
    )
}
