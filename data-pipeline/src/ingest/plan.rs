//! The ingest plan: which records a source holds (in a fixed, sorted order) and what is known
//! about each before reading it (labels, patient, age, sex, fold), for every source format,
//! including format auto-detection and the label-CSV override.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use ecgfm_wfdb::labels::{read_cinc2017_reference_from, PtbXlDatabase, Sex};
use ecgfm_wfdb::Header;
use rayon::prelude::*;
use serde::{Serialize, Serializer};

use crate::error::DataError;
use crate::ingest::label_csv::LabelOverride;
use crate::ingest::options::SourceFormat;
use crate::ingest::source::SourceRoot;

/// One record to ingest. Serialised into the resume journal's fingerprint, so every field but
/// `header_comments` (which follows from the format) decides whether an ingest resumes (a
/// changed label file included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRecord {
    /// Record path relative to the source root, without `.hea` (`records500/00000/00001_hr`).
    pub name: String,
    /// The `record_id` column: the file name without folders.
    pub record_id: String,
    pub labels: Vec<String>,
    /// The source's own patient id, when it knows one (ingest prefixes it with the source's
    /// name, as it does record ids).
    pub patient_id: Option<String>,
    pub age: Option<f32>,
    #[serde(serialize_with = "sex_code")]
    pub sex: Option<Sex>,
    pub fold: Option<i8>,
    /// Whether the `# Dx` header comment adds labels once the record is read (not when a label
    /// CSV gives the record's labels).
    pub header_labels: bool,
    /// Whether `# Age`/`# Sex` header comments fill in what the plan lacks once the record is
    /// read (a label CSV's row keeps them: until 2026-12-06 a row for the record dropped them).
    /// Not part of the plan's digest (`journal.rs`): it follows from the format.
    #[serde(skip)]
    pub header_comments: bool,
}

/// `M` or `F`, as the shards' `sex` column.
fn sex_code<S: Serializer>(sex: &Option<Sex>, serializer: S) -> Result<S::Ok, S::Error> {
    sex.map(crate::ingest::record::sex_code)
        .serialize(serializer)
}

impl PlannedRecord {
    pub(crate) fn bare(name: &str, header_labels: bool) -> Self {
        PlannedRecord {
            name: name.to_string(),
            record_id: name.rsplit('/').next().unwrap_or(name).to_string(),
            labels: Vec::new(),
            patient_id: None,
            age: None,
            sex: None,
            fold: None,
            header_labels,
            header_comments: header_labels,
        }
    }
}

/// Refuses `records` (one ingest's, in order) when two of them in different folders of
/// `source` (its description) share a file name, so would share a `record_id` (and a patient,
/// when the source knows none): two recordings would pass for one, in `--record-ids` lists and
/// in `ecgfm eval`'s check of held-out records, with no word said. Names the first such pair
/// and how to resolve it; an ingest whose ids are all distinct is not affected.
pub(crate) fn refuse_shared_record_ids(
    records: &[PlannedRecord],
    source: &str,
) -> Result<(), DataError> {
    let mut first: HashMap<&str, &str> = HashMap::with_capacity(records.len());
    let mut shared: Vec<(&str, &str, &str)> = Vec::new();
    for record in records {
        match first.entry(&record.record_id) {
            Entry::Occupied(earlier) => {
                shared.push((&record.record_id, earlier.get(), &record.name))
            }
            Entry::Vacant(slot) => {
                slot.insert(&record.name);
            }
        }
    }
    let Some((id, earlier, later)) = shared.first() else {
        return Ok(());
    };
    let more = match shared.len() {
        1 => String::new(),
        n => format!(" ({} more records share an id with an earlier one)", n - 1),
    };
    Err(DataError::Refused(format!(
        "{source}: records `{earlier}` and `{later}` would both be ingested as record id \
         `{id}` (a record id is the file name, without its folders){more}; ingest each \
         subfolder as its own source with its own --source-name, or leave the duplicates out \
         with --exclude FILE listing their paths (`{later}`)"
    )))
}

/// The resolved format and its records.
#[derive(Debug, Clone)]
pub struct Plan {
    pub format: SourceFormat,
    pub records: Vec<PlannedRecord>,
    /// What the user should know about the plan (label-CSV rows that match no record, signal
    /// files no header names, headers spelled `.HEA`).
    pub warnings: Vec<String>,
}

const PTBXL_DATABASE: &str = "ptbxl_database.csv";
const PTBXL_STATEMENTS: &str = "scp_statements.csv";
const CINC2017_REFERENCE: &str = "REFERENCE.csv";

/// Oldest age PTB-XL reports as such: it writes 300 for every patient over 89.
const PTBXL_AGE_CAP: f64 = 90.0;

/// A warning naming the source's headers spelled `.HEA` (or `.Hea`, ...), which are not read:
/// WFDB names are case-sensitive (a header names its signal files as they are spelled), and an
/// export from a system that upper-cases file names was left out without a word.
fn other_case_headers(source: &SourceRoot, files: &[String]) -> Option<String> {
    let other: Vec<&str> = (files.iter())
        .filter(|f| {
            let ext = f.rsplit_once('.').map_or("", |(_, ext)| ext);
            ext.eq_ignore_ascii_case("hea") && ext != "hea"
        })
        .map(String::as_str)
        .collect();
    let first = other.first()?;
    Some(format!(
        "{}: {} header files are not named `.hea` in lower case (e.g. {first}) and are not read: \
         WFDB names are case-sensitive; rename them (and, if their header lines name their \
         signal files otherwise, those too) to ingest them",
        source.describe(),
        other.len()
    ))
}

/// Lists the source's records for `format` (detecting it for `Auto`), sorted by name, with the
/// label-CSV override applied (a CSV none of whose rows names a record fails).
pub fn make_plan(
    source: &SourceRoot,
    format: SourceFormat,
    labels: Option<&LabelOverride>,
) -> Result<Plan, DataError> {
    let files = source.list_files()?;
    let headers: Vec<&str> = files
        .iter()
        .filter_map(|f| f.strip_suffix(".hea"))
        .collect();
    let format = match format {
        SourceFormat::Auto => detect(source, &files, &headers)?,
        known => known,
    };
    let needed = match format {
        SourceFormat::Ptbxl => Some(PTBXL_DATABASE),
        SourceFormat::Cinc2017 => Some(CINC2017_REFERENCE),
        _ => None,
    };
    if let Some(needed) = needed.filter(|n| !files.iter().any(|f| f == n)) {
        return Err(wrong_format(source, &files, &headers, format, needed)?);
    }
    if format == SourceFormat::Cinc2021 {
        // Another format's label table: its labels would be lost without a word.
        let looks = detect(source, &files, &headers)?;
        if matches!(looks, SourceFormat::Ptbxl | SourceFormat::Cinc2017) {
            return Err(not_cinc2021(source, &files, &headers)?);
        }
    }
    let mut warnings = Vec::new();
    let mut records = match format {
        SourceFormat::Ptbxl => ptbxl_records(source, &files)?,
        SourceFormat::Cinc2017 => cinc2017_records(source, &headers)?,
        SourceFormat::Cinc2021 | SourceFormat::Wfdb | SourceFormat::Auto => {
            let scan = scan_headers(source, &headers);
            if format == SourceFormat::Cinc2021 && !scan.dx && !headers.is_empty() {
                return Err(not_cinc2021(source, &files, &headers)?);
            }
            warnings.extend(headerless_signal_files(source, &files, &headers, &scan));
            headers
                .iter()
                .filter(|name| !scan.segments.contains(**name))
                .map(|name| PlannedRecord::bare(name, true))
                .collect()
        }
    };
    records.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(labels) = labels {
        warnings.extend(labels.apply_all(&mut records)?);
    }
    warnings.extend(other_case_headers(source, &files));
    Ok(Plan {
        format,
        records,
        warnings,
    })
}

/// What reading every header of a WFDB source tells the plan.
struct HeaderScan {
    /// The records that are segments (or the layout) of a multi-segment record: they are read
    /// as part of that record and must not be ingested again on their own.
    segments: HashSet<String>,
    /// Whether any header has a `# Dx:` line (what `--format cinc2021` reads labels from).
    dx: bool,
    /// The signal files the headers name, with their folders.
    signal_files: HashSet<String>,
}

/// Reads every header in `headers` (in parallel); one that cannot be read or parsed is left
/// for ingest to quarantine.
fn scan_headers(source: &SourceRoot, headers: &[&str]) -> HeaderScan {
    let read: Vec<(Vec<String>, bool, Vec<String>)> = headers
        .par_iter()
        .filter_map(|name| {
            let text = source.read(&format!("{name}.hea")).ok()?;
            let text = String::from_utf8_lossy(&text);
            let dx = has_dx_line(&text);
            let Ok(header) = Header::parse(&text, name) else {
                return Some((Vec::new(), dx, Vec::new()));
            };
            let dir = name.rfind('/').map_or("", |i| &name[..=i]);
            let files = (header.signals.iter())
                .map(|signal| format!("{dir}{}", signal.file_name))
                .collect();
            let segments = match header.is_multi_segment() {
                true => header
                    .segments
                    .into_iter()
                    .filter(|segment| segment.name != "~")
                    .map(|segment| format!("{dir}{}", segment.name))
                    .collect(),
                false => Vec::new(),
            };
            Some((segments, dx, files))
        })
        .collect();
    let mut scan = HeaderScan {
        segments: HashSet::new(),
        dx: false,
        signal_files: HashSet::new(),
    };
    for (segments, dx, files) in read {
        scan.segments.extend(segments);
        scan.dx |= dx;
        scan.signal_files.extend(files);
    }
    scan
}

/// A warning naming the source's signal files (`.dat`, `.mat`) that no header names and that
/// have no header of their own name: without a header they cannot be read, and were left out
/// without a word (a header lost in a copy, say).
fn headerless_signal_files(
    source: &SourceRoot,
    files: &[String],
    headers: &[&str],
    scan: &HeaderScan,
) -> Option<String> {
    // Stems of every header, `.HEA` and the like too (`other_case_headers` names those).
    let headers: HashSet<&str> = (headers.iter().copied())
        .chain(files.iter().filter_map(|f| {
            let (stem, ext) = f.rsplit_once('.')?;
            ext.eq_ignore_ascii_case("hea").then_some(stem)
        }))
        .collect();
    let orphans: Vec<&str> = (files.iter())
        .filter(|f| {
            let Some((stem, ext)) = f.rsplit_once('.') else {
                return false;
            };
            matches!(ext, "dat" | "mat")
                && !headers.contains(stem)
                && !scan.signal_files.contains(f.as_str())
        })
        .map(String::as_str)
        .collect();
    let first = orphans.first()?;
    Some(format!(
        "{}: {} signal files have no header (e.g. {first}; no `.hea` names them) and are not \
         read: a WFDB record is read through its header",
        source.describe(),
        orphans.len()
    ))
}

/// Whether a header's text has a `# Dx:` comment line (any case).
fn has_dx_line(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start_matches('#').trim_start();
        line.len() >= 3 && line.as_bytes()[..3].eq_ignore_ascii_case(b"dx:")
    })
}

fn detect(
    source: &SourceRoot,
    files: &[String],
    headers: &[&str],
) -> Result<SourceFormat, DataError> {
    if files.iter().any(|f| f == PTBXL_DATABASE) {
        return Ok(SourceFormat::Ptbxl);
    }
    if files.iter().any(|f| f == CINC2017_REFERENCE) {
        return Ok(SourceFormat::Cinc2017);
    }
    if let Some(first) = headers.first() {
        let text = source.read(&format!("{first}.hea"))?;
        let text = String::from_utf8_lossy(&text);
        if has_dx_line(&text) {
            return Ok(SourceFormat::Cinc2021);
        }
    }
    Ok(SourceFormat::Wfdb)
}

/// The error of `--format FORMAT` on a source without the file `needed` that format reads: what
/// the source looks like, and the `--format` that reads it.
fn wrong_format(
    source: &SourceRoot,
    files: &[String],
    headers: &[&str],
    format: SourceFormat,
    needed: &str,
) -> Result<DataError, DataError> {
    if headers.is_empty() {
        return Ok(DataError::Io {
            path: source.uri_of(needed),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "not found: --format {format} reads it, and the folder holds no WFDB \
                     record (.hea) either: is it the dataset's folder?"
                ),
            ),
        });
    }
    let looks = detect(source, files, headers)?;
    let has = match looks {
        SourceFormat::Ptbxl => format!("it has {PTBXL_DATABASE}"),
        SourceFormat::Cinc2017 => format!("it has {CINC2017_REFERENCE}"),
        SourceFormat::Cinc2021 => "its headers carry `# Dx:` labels".to_string(),
        _ => format!("{} WFDB headers and no label file", headers.len()),
    };
    let reason = format!(
        "not found: --format {format} reads it; this folder looks like {looks} ({has}): use \
         --format {looks} or --format auto"
    );
    Ok(DataError::Io {
        path: source.uri_of(needed),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, reason),
    })
}

/// The error of `--format cinc2021` on a source that is recognisably another format (a PTB-XL
/// or CinC 2017 label table) or whose headers carry no `# Dx:` line: read so, its records would
/// be ingested without labels (and PTB-XL's without patients or folds).
fn not_cinc2021(
    source: &SourceRoot,
    files: &[String],
    headers: &[&str],
) -> Result<DataError, DataError> {
    let looks = detect(source, files, headers)?;
    let has = match looks {
        SourceFormat::Ptbxl => format!("it has {PTBXL_DATABASE}"),
        SourceFormat::Cinc2017 => format!("it has {CINC2017_REFERENCE}"),
        _ => format!(
            "none of its {} WFDB headers has a `# Dx:` line",
            headers.len()
        ),
    };
    // `detect` looks at the first header only: with no `# Dx:` line in any, plain WFDB.
    let looks = match looks {
        SourceFormat::Cinc2021 => SourceFormat::Wfdb,
        other => other,
    };
    Ok(DataError::Refused(format!(
        "{}: --format cinc2021 reads labels from `# Dx:` header lines; this folder looks like \
         {looks} ({has}): use --format {looks} or --format auto",
        source.describe()
    )))
}

fn ptbxl_records(source: &SourceRoot, files: &[String]) -> Result<Vec<PlannedRecord>, DataError> {
    let database = source.read(PTBXL_DATABASE)?;
    let statements = source.read(PTBXL_STATEMENTS)?;
    let db = PtbXlDatabase::from_bytes(
        &database,
        &source.uri_of(PTBXL_DATABASE),
        &statements,
        &source.uri_of(PTBXL_STATEMENTS),
    )?;
    // The records whose header is there, by name: looked up twice per database entry, so a
    // scan of the listing for each would make the plan quadratic (about 3 s of 20,000 records).
    let headers: HashSet<&str> = files
        .iter()
        .filter_map(|f| f.strip_suffix(".hea"))
        .collect();
    let present = |name: &str| headers.contains(name);
    Ok(db
        .entries
        .iter()
        .map(|entry| {
            let name = if present(&entry.filename_hr) || !present(&entry.filename_lr) {
                &entry.filename_hr
            } else {
                &entry.filename_lr
            };
            let mut record = PlannedRecord::bare(name, false);
            record.labels = entry
                .scp_labels
                .iter()
                .chain(&entry.superclasses)
                .cloned()
                .collect();
            record.patient_id = entry.patient_id.map(|p| p.to_string());
            record.age = entry.age.map(|a| a.min(PTBXL_AGE_CAP) as f32);
            record.sex = entry.sex;
            record.fold = Some(entry.strat_fold as i8);
            record
        })
        .collect())
}

fn cinc2017_records(
    source: &SourceRoot,
    headers: &[&str],
) -> Result<Vec<PlannedRecord>, DataError> {
    let reference = source.read(CINC2017_REFERENCE)?;
    let labels: HashMap<String, String> =
        read_cinc2017_reference_from(&reference, &source.uri_of(CINC2017_REFERENCE))?
            .into_iter()
            .map(|l| (l.record, l.label))
            .collect();
    Ok(headers
        .iter()
        .map(|name| {
            let mut record = PlannedRecord::bare(name, false);
            record.labels.extend(labels.get(&record.record_id).cloned());
            record
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PTB-XL folder of `ecg_ids` whose header files are `present` (empty files: the plan
    /// reads no header of this format).
    fn ptbxl_folder(dir: &std::path::Path, ecg_ids: &[u32], present: &[&str]) {
        let mut database = String::from(
            "ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr,filename_hr\n",
        );
        for id in ecg_ids {
            database.push_str(&format!(
                "{id},{id}.0,50.0,0,\"{{'NORM': 100.0}}\",{},records100/{id:05}_lr,\
                 records500/{id:05}_hr\n",
                id % 10 + 1
            ));
        }
        std::fs::write(dir.join(PTBXL_DATABASE), database).unwrap();
        std::fs::write(
            dir.join(PTBXL_STATEMENTS),
            ",diagnostic,diagnostic_class\nNORM,1.0,NORM\n",
        )
        .unwrap();
        for name in present {
            let path = dir.join(format!("{name}.hea"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
    }

    #[test]
    fn ptbxl_records_are_read_at_500_hz_unless_only_the_100_hz_header_is_there() {
        let dir = tempfile::tempdir().unwrap();
        ptbxl_folder(
            dir.path(),
            &[1, 2, 3, 4, 5],
            &[
                "records500/00001_hr",
                "records100/00001_lr",
                "records100/00002_lr",
                "records500/00003_hr",
                "records100/00005_lr",
            ],
        );
        // The 500 Hz data file alone is no header: entry 5 reads its 100 Hz header.
        std::fs::write(dir.path().join("records500/00005_hr.dat"), "").unwrap();
        let source = SourceRoot::Local(dir.path().to_path_buf());
        let plan = make_plan(&source, SourceFormat::Auto, None).unwrap();
        assert_eq!(plan.format, SourceFormat::Ptbxl);
        let names: Vec<&str> = plan.records.iter().map(|r| r.name.as_str()).collect();
        // Both there: 500 Hz; 100 Hz only: 100 Hz; neither: 500 Hz (ingest quarantines it).
        assert_eq!(
            names,
            [
                "records100/00002_lr",
                "records100/00005_lr",
                "records500/00001_hr",
                "records500/00003_hr",
                "records500/00004_hr",
            ]
        );
        assert_eq!(
            plan.records[2].labels,
            ["scp:NORM", "ptbxl_superclass:NORM"]
        );
        assert_eq!(plan.records[2].fold, Some(2));
    }

    #[test]
    fn signal_files_no_header_names_are_named_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("a.hea", "a 1 500 10\na.dat 16 200 16 0 0 0 0 I\n");
        write("a.dat", "");
        // A header may name a signal file of another stem.
        write("c.hea", "c 1 500 10\nc_signal.dat 16 200 16 0 0 0 0 I\n");
        write("c_signal.dat", "");
        // A header that does not parse keeps its own signal file out of the warning.
        write("e.hea", "not a header");
        write("e.mat", "");
        write("b.dat", "");
        write("sub/d.mat", "");
        // A header spelled `.HEA` is named by its own warning, its signal file not again.
        write("f.HEA", "f 1 500 10\nf.dat 16 200 16 0 0 0 0 I\n");
        write("f.dat", "");
        write("notes.txt", "");
        let source = SourceRoot::Local(dir.path().to_path_buf());
        let plan = make_plan(&source, SourceFormat::Auto, None).unwrap();
        let names: Vec<&str> = plan.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "e"]);
        assert_eq!(plan.warnings.len(), 2, "{:?}", plan.warnings);
        assert!(
            plan.warnings[0].contains("2 signal files have no header (e.g. b.dat;"),
            "{:?}",
            plan.warnings
        );
        assert!(
            plan.warnings[1].contains("(e.g. f.HEA)"),
            "{:?}",
            plan.warnings
        );
        std::fs::remove_file(dir.path().join("b.dat")).unwrap();
        std::fs::remove_file(dir.path().join("sub/d.mat")).unwrap();
        std::fs::remove_file(dir.path().join("f.HEA")).unwrap();
        std::fs::remove_file(dir.path().join("f.dat")).unwrap();
        let plan = make_plan(&source, SourceFormat::Auto, None).unwrap();
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }
}
