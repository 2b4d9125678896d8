//! PTB-XL labels: `ptbxl_database.csv` (one row per ECG) joined with `scp_statements.csv`
//! (SCP-ECG statement table) to give every ECG its SCP codes (`scp:CODE`) and diagnostic
//! superclasses (`ptbxl_superclass:NORM|MI|STTC|CD|HYP`) as in the PTB-XL benchmark: every
//! code of the ECG whose `diagnostic` column is 1, mapped through `diagnostic_class`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::Sex;
use crate::error::WfdbError;

/// One ECG of PTB-XL.
#[derive(Debug, Clone, PartialEq)]
pub struct PtbXlEntry {
    /// `ecg_id`.
    pub ecg_id: u32,
    /// `patient_id` (stored as a float in the CSV); `None` when empty.
    pub patient_id: Option<u32>,
    /// Age in years (PTB-XL writes 300 for patients over 89); `None` when empty.
    pub age: Option<f64>,
    /// Sex (`0` male, `1` female); `None` when empty.
    pub sex: Option<Sex>,
    /// Stratified fold 1-10 (the benchmark tests on 10, validates on 9).
    pub strat_fold: u8,
    /// 100 Hz record path relative to the database folder, e.g. `records100/00000/00001_lr`.
    pub filename_lr: String,
    /// 500 Hz record path relative to the database folder, e.g. `records500/00000/00001_hr`.
    pub filename_hr: String,
    /// `(code, likelihood)` pairs of `scp_codes`, in CSV order.
    pub scp_likelihoods: Vec<(String, f64)>,
    /// `scp:CODE` for every code of `scp_codes`, in CSV order.
    pub scp_labels: Vec<String>,
    /// `ptbxl_superclass:CLASS`, sorted, without duplicates (empty when no diagnostic code).
    pub superclasses: Vec<String>,
}

/// The PTB-XL database table, in `ptbxl_database.csv` order.
#[derive(Debug, Clone, Default)]
pub struct PtbXlDatabase {
    /// One entry per row.
    pub entries: Vec<PtbXlEntry>,
    by_id: HashMap<u32, usize>,
}

impl PtbXlDatabase {
    /// Loads and joins the two CSV files.
    pub fn load(database_csv: &Path, statements_csv: &Path) -> Result<Self, WfdbError> {
        let read =
            |p: &Path| std::fs::read(p).map_err(|e| WfdbError::from_io(p.display().to_string(), e));
        Self::from_bytes(
            &read(database_csv)?,
            &database_csv.display().to_string(),
            &read(statements_csv)?,
            &statements_csv.display().to_string(),
        )
    }

    /// Joins the two CSV files given as bytes; the names label errors.
    pub fn from_bytes(
        database: &[u8],
        database_name: &str,
        statements: &[u8],
        statements_name: &str,
    ) -> Result<Self, WfdbError> {
        let classes = diagnostic_classes(statements, statements_name)?;
        let table = Table::read(database, database_name)?;
        let mut db = PtbXlDatabase::default();
        for (row_index, row) in table.rows.iter().enumerate() {
            let cell = |column: &str| table.cell(row, column);
            let bad = |reason: String| WfdbError::BadLabels {
                file: database_name.to_string(),
                row: row_index + 1,
                reason,
            };
            let ecg_id: u32 = parse_whole(cell("ecg_id")?)
                .ok_or_else(|| bad(format!("bad ecg_id `{}`", cell("ecg_id").unwrap_or(""))))?;
            let scp_likelihoods = parse_scp_codes(cell("scp_codes")?).map_err(bad)?;
            let superclasses: BTreeSet<String> = scp_likelihoods
                .iter()
                .filter_map(|(code, _)| classes.get(code))
                .map(|class| format!("ptbxl_superclass:{class}"))
                .collect();
            let sex = match cell("sex")?.trim() {
                "0" | "0.0" => Some(Sex::Male),
                "1" | "1.0" => Some(Sex::Female),
                "" => None,
                other => return Err(bad(format!("sex `{other}` is neither 0 nor 1"))),
            };
            let strat_fold = parse_whole(cell("strat_fold")?)
                .and_then(|f| u8::try_from(f).ok())
                .ok_or_else(|| bad("bad strat_fold".into()))?;
            db.by_id.insert(ecg_id, db.entries.len());
            db.entries.push(PtbXlEntry {
                ecg_id,
                patient_id: parse_whole(cell("patient_id")?),
                age: cell("age")?.trim().parse().ok(),
                sex,
                strat_fold,
                filename_lr: cell("filename_lr")?.to_string(),
                filename_hr: cell("filename_hr")?.to_string(),
                scp_labels: scp_likelihoods
                    .iter()
                    .map(|(c, _)| format!("scp:{c}"))
                    .collect(),
                scp_likelihoods,
                superclasses: superclasses.into_iter().collect(),
            });
        }
        Ok(db)
    }

    /// The entry of `ecg_id`.
    pub fn get(&self, ecg_id: u32) -> Option<&PtbXlEntry> {
        self.by_id.get(&ecg_id).map(|&i| &self.entries[i])
    }
}

/// A CSV file with named columns.
struct Table {
    file: String,
    columns: HashMap<String, usize>,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    fn read(bytes: &[u8], file: &str) -> Result<Table, WfdbError> {
        let mut reader = csv::Reader::from_reader(bytes);
        let bad = |row: usize, e: csv::Error| WfdbError::BadLabels {
            file: file.to_string(),
            row,
            reason: e.to_string(),
        };
        let columns = reader
            .headers()
            .map_err(|e| bad(0, e))?
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), i))
            .collect();
        let rows = reader
            .records()
            .enumerate()
            .map(|(i, r)| r.map_err(|e| bad(i + 1, e)))
            .collect::<Result<_, _>>()?;
        Ok(Table {
            file: file.to_string(),
            columns,
            rows,
        })
    }

    fn cell<'r>(&self, row: &'r csv::StringRecord, column: &str) -> Result<&'r str, WfdbError> {
        let index = self
            .columns
            .get(column)
            .ok_or_else(|| WfdbError::BadLabels {
                file: self.file.clone(),
                row: 0,
                reason: format!("no column `{column}`"),
            })?;
        Ok(row.get(*index).unwrap_or(""))
    }
}

/// Code -> diagnostic class for the codes whose `diagnostic` column is 1.
fn diagnostic_classes(bytes: &[u8], file: &str) -> Result<HashMap<String, String>, WfdbError> {
    let table = Table::read(bytes, file)?;
    let mut classes = HashMap::new();
    for row in &table.rows {
        let diagnostic = table.cell(row, "diagnostic")?.trim();
        let class = table.cell(row, "diagnostic_class")?.trim();
        if matches!(diagnostic, "1" | "1.0") && !class.is_empty() {
            classes.insert(row.get(0).unwrap_or("").to_string(), class.to_string());
        }
    }
    Ok(classes)
}

/// Parses an integer written as `15709` or `15709.0`.
fn parse_whole(text: &str) -> Option<u32> {
    let value: f64 = text.trim().parse().ok()?;
    (value >= 0.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX)).then_some(value as u32)
}

/// Parses a Python dict literal of `'CODE': likelihood` pairs, e.g. `{'NORM': 100.0, 'SR': 0.0}`.
fn parse_scp_codes(text: &str) -> Result<Vec<(String, f64)>, String> {
    let bad = || format!("scp_codes `{text}` is not a dict of 'CODE': number");
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut pairs = Vec::new();
    for item in inner.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once(':').ok_or_else(bad)?;
        let key = key.trim();
        let code = key
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
            .ok_or_else(bad)?;
        let likelihood = value.trim().parse().map_err(|_| bad())?;
        pairs.push((code.to_string(), likelihood));
    }
    Ok(pairs)
}
