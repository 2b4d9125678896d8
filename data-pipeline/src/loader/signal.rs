//! Direct decode of a row group's `signal` column chunk into rows of stored values, without
//! building Arrow list arrays: Parquet's page reader and column reader append the INT32 values
//! (any encoding, any codec) to the caller's buffer and give the repetition levels, with which
//! we check every row is exactly `12 * window` values. The values stay INT32 (Parquet's physical
//! type for Int16): narrowing them would be one more pass for nothing, the batch converts them
//! to f32 anyway.
//!
//! This is the loader's hot path (see the README's loader benchmark): the generic Arrow
//! `FixedSizeList` reader spends most of its time re-validating levels and copying.

use std::cell::RefCell;
use std::sync::Arc;

use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::Int32Type;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::serialized_reader::SerializedPageReader;

use super::shard::SparseFile;

/// Level buffers reused across calls on one worker thread (a row group's worth of levels would
/// otherwise be page-faulted in on every call).
#[derive(Default)]
struct Scratch {
    def: Vec<i16>,
    rep: Vec<i16>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Decodes rows `rows` (ascending, within row group `rg_meta`) of leaf column `leaf` into
/// `out` (`rows.len() * row_len` values, row after row). Errors are plain strings; the caller
/// names the file.
pub(crate) fn decode_signal_rows(
    file: SparseFile,
    rg_meta: &RowGroupMetaData,
    leaf: usize,
    rows: &[u32],
    row_len: usize,
    out: &mut Vec<i32>,
) -> Result<(), String> {
    let column = rg_meta.column(leaf);
    let descr = column.column_descr_ptr();
    if descr.max_rep_level() != 1 {
        return Err(format!(
            "signal has repetition depth {}, expected a single list",
            descr.max_rep_level()
        ));
    }
    let pages =
        SerializedPageReader::new(Arc::new(file), column, rg_meta.num_rows() as usize, None)
            .map_err(|e| e.to_string())?;
    let mut reader = ColumnReaderImpl::<Int32Type>::new(descr.clone(), Box::new(pages));
    out.clear();
    out.reserve(rows.len() * row_len);
    SCRATCH.with_borrow_mut(|scratch| {
        let mut next = 0u32;
        for run in consecutive_runs(rows) {
            if run.start > next {
                let skip = (run.start - next) as usize;
                let skipped = reader.skip_records(skip).map_err(|e| e.to_string())?;
                if skipped != skip {
                    return Err(format!("row group ends before row {}", run.start));
                }
            }
            let count = (run.end - run.start) as usize;
            scratch.def.clear();
            scratch.rep.clear();
            let (records, values, levels) = reader
                .read_records(count, Some(&mut scratch.def), Some(&mut scratch.rep), out)
                .map_err(|e| e.to_string())?;
            check_shape(&scratch.rep, records, values, levels, count, row_len)?;
            next = run.end;
        }
        Ok(())
    })
}

/// Every row holds exactly `row_len` values, none null: `count` records, as many values as
/// levels, and a record start (repetition level 0) every `row_len` levels.
fn check_shape(
    rep: &[i16],
    records: usize,
    values: usize,
    levels: usize,
    count: usize,
    row_len: usize,
) -> Result<(), String> {
    if records != count || values != levels || levels != count * row_len {
        return Err(format!(
            "signal holds {values} values in {levels} levels for {records} rows; expected \
             {count} rows of {row_len} non-null values"
        ));
    }
    // The column reader counted `records` level-0 entries; all of them sit on row boundaries.
    if rep.iter().step_by(row_len).any(|&r| r != 0) {
        return Err(format!("signal rows are not all {row_len} values long"));
    }
    Ok(())
}

/// `rows` (ascending) as half-open runs of consecutive row numbers.
pub(crate) fn consecutive_runs(rows: &[u32]) -> Vec<std::ops::Range<u32>> {
    let mut runs: Vec<std::ops::Range<u32>> = Vec::new();
    for &row in rows {
        match runs.last_mut() {
            Some(last) if last.end == row => last.end += 1,
            _ => runs.push(row..row + 1),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_consecutive_rows() {
        assert_eq!(
            consecutive_runs(&[0, 1, 2, 5, 7, 8]),
            vec![0..3, 5..6, 7..9]
        );
        assert!(consecutive_runs(&[]).is_empty());
    }

    #[test]
    fn shape_check_rejects_ragged_rows() {
        let rep = [0, 1, 1, 0, 1, 1];
        assert!(check_shape(&rep, 2, 6, 6, 2, 3).is_ok());
        let ragged = [0, 1, 0, 1, 1, 1];
        assert!(check_shape(&ragged, 2, 6, 6, 2, 3).is_err());
        assert!(check_shape(&rep, 2, 5, 6, 2, 3).is_err());
    }
}
