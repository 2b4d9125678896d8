//! MATLAB v4 signal files (`.mat`, as written by `wfdb2mat` and used by the CinC challenges):
//! parses the 20-byte matrix header to find where the samples start, and checks that it agrees
//! with the WFDB header (sample type, byte offset, one row per stored signal).

use crate::error::WfdbError;
use crate::format::SignalFormat;

const V4_HEADER_LEN: usize = 20;

/// The byte offset of the first sample of a v4 `.mat` file, after checking that the matrix
/// holds `rows` samples per frame of `format` and that `declared_offset` (the WFDB header's
/// `+N`, 0 when absent) agrees.
pub(crate) fn data_offset(
    bytes: &[u8],
    file: &str,
    format: SignalFormat,
    rows: usize,
    declared_offset: u64,
) -> Result<usize, WfdbError> {
    let bad = |reason: String| WfdbError::BadMatFile {
        file: file.to_string(),
        reason,
    };
    if bytes.starts_with(b"MATLAB 5.0") {
        return Err(bad("MATLAB v5 files are not supported (v4 expected)".into()));
    }
    if bytes.len() < V4_HEADER_LEN {
        return Err(WfdbError::Truncated {
            file: file.to_string(),
            needed: V4_HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    let little = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let big_endian = little >= 1000;
    let field = |i: usize| {
        let b = [
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let (type_code, mrows, ncols, imagf, name_len) =
        (field(0), field(1), field(2), field(3), field(4));
    let machine = type_code / 1000;
    let precision = (type_code / 10) % 10;
    if machine > 1 || (type_code / 100) % 10 != 0 || type_code % 10 != 0 || imagf != 0 {
        return Err(bad(format!(
            "matrix type {type_code} is not a real numeric v4 matrix"
        )));
    }
    let stored = match (machine, precision) {
        (0, 3) => SignalFormat::Int16,
        (1, 3) => SignalFormat::BigEndian16,
        (0, 2) => SignalFormat::Int32,
        (0, 4) => SignalFormat::Offset16,
        (0, 5) => SignalFormat::Offset8,
        _ => return Err(bad(format!("matrix type {type_code} has no WFDB format"))),
    };
    if stored != format {
        return Err(bad(format!(
            "matrix type {type_code} holds format {} but the header says {}",
            stored.code(),
            format.code()
        )));
    }
    if mrows as usize != rows {
        return Err(bad(format!(
            "matrix has {mrows} rows but the header stores {rows} samples per frame"
        )));
    }
    let offset = V4_HEADER_LEN + name_len as usize;
    if declared_offset != 0 && declared_offset != offset as u64 {
        return Err(bad(format!(
            "samples start at byte {offset} but the header says +{declared_offset}"
        )));
    }
    let needed = offset + format.bytes_for(mrows as usize * ncols as usize);
    if bytes.len() < needed {
        return Err(WfdbError::Truncated {
            file: file.to_string(),
            needed: needed as u64,
            found: bytes.len() as u64,
        });
    }
    Ok(offset)
}
