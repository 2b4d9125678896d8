//! MIT-format annotation files (`.atr`, `.qrs`, ...): beat and rhythm labels with their sample
//! positions, decoded from 16-bit words (6-bit code, 10-bit value) and the SKIP, NUM, SUB, CHN
//! and AUX pseudo-codes.

use std::path::Path;

use crate::error::WfdbError;
use crate::source::{DirSource, RecordSource};

/// One annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Sample (frame) index.
    pub sample: i64,
    /// Annotation code (1-49; 0 is NOTQRS).
    pub code: u8,
    /// Mnemonic symbol of the code (`N`, `V`, `A`, `+`, ...; empty for unassigned codes).
    pub symbol: &'static str,
    /// Subtype (reset to 0 for each annotation).
    pub subtype: i16,
    /// Signal number (carries over from the previous annotation until changed).
    pub chan: u8,
    /// Annotator number (carries over from the previous annotation until changed).
    pub num: i8,
    /// Auxiliary text, e.g. `(AFIB` on a rhythm change (`+`); empty when absent.
    pub aux: String,
}

const SKIP: u16 = 59;
const NUM: u16 = 60;
const SUB: u16 = 61;
const CHN: u16 = 62;
const AUX: u16 = 63;

/// The WFDB mnemonic of each annotation code (index = code).
const SYMBOLS: [&str; 50] = [
    " ", "N", "L", "R", "a", "V", "F", "J", "A", "S", "E", "j", "/", "Q", "~", "", "|", "", "s",
    "T", "*", "D", "\"", "=", "p", "B", "^", "t", "+", "u", "?", "!", "[", "]", "e", "n", "@", "x",
    "f", "(", ")", "r", "", "", "", "", "", "", "", "",
];

/// The WFDB mnemonic of annotation `code` (empty for unassigned codes).
pub fn symbol_of(code: u8) -> &'static str {
    SYMBOLS.get(usize::from(code)).copied().unwrap_or("")
}

/// Reads annotation file `<record>.<extension>` from the local filesystem.
pub fn read_annotations(record: &Path, extension: &str) -> Result<Vec<Annotation>, WfdbError> {
    let dir = record.parent().unwrap_or(Path::new(""));
    let name = record.file_name().and_then(|n| n.to_str()).unwrap_or("");
    read_annotations_from(&DirSource::new(dir), name, extension)
}

/// Reads annotation file `<record>.<extension>` from `source`.
pub fn read_annotations_from(
    source: &dyn RecordSource,
    record: &str,
    extension: &str,
) -> Result<Vec<Annotation>, WfdbError> {
    let file = format!("{record}.{extension}");
    let bytes = source.fetch(&file)?;
    parse_annotations(&bytes, &file)
}

/// Decodes the bytes of an MIT-format annotation file; `file` names it in errors.
pub fn parse_annotations(bytes: &[u8], file: &str) -> Result<Vec<Annotation>, WfdbError> {
    let truncated = |needed: usize| WfdbError::Truncated {
        file: file.to_string(),
        needed: needed as u64,
        found: bytes.len() as u64,
    };
    let word_at = |pos: usize| -> Result<u16, WfdbError> {
        bytes
            .get(pos..pos + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| truncated(pos + 2))
    };
    let mut annotations: Vec<Annotation> = Vec::new();
    let (mut time, mut chan, mut num) = (0i64, 0u8, 0i8);
    let mut pos = 0;
    while pos + 1 < bytes.len() {
        let word = word_at(pos)?;
        pos += 2;
        let (code, value) = (word >> 10, word & 0x3ff);
        match code {
            0 if value == 0 => break,
            SKIP => {
                let high = word_at(pos)?;
                let low = word_at(pos + 2)?;
                pos += 4;
                time += i64::from(((u32::from(high) << 16) | u32::from(low)) as i32);
            }
            NUM | SUB | CHN | AUX => {
                let Some(last) = annotations.last_mut() else {
                    return Err(WfdbError::BadAnnotation {
                        file: file.to_string(),
                        reason: format!(
                            "pseudo-code {code} at byte {} before any annotation",
                            pos - 2
                        ),
                    });
                };
                match code {
                    NUM => {
                        num = value as u8 as i8;
                        last.num = num;
                    }
                    // WFDB's `subtyp` is a signed char: the low 8 bits, sign-extended (wfdb
                    // writes -2 as 0x0FE).
                    SUB => last.subtype = i16::from(value as u8 as i8),
                    CHN => {
                        chan = value as u8;
                        last.chan = chan;
                    }
                    _ => {
                        let len = usize::from(value);
                        let text = bytes
                            .get(pos..pos + len)
                            .ok_or_else(|| truncated(pos + len))?;
                        let text = text.split(|&b| b == 0).next().unwrap_or(&[]);
                        last.aux = String::from_utf8_lossy(text).into_owned();
                        pos += len + len % 2;
                    }
                }
            }
            0..=49 => {
                time += i64::from(value);
                let code = code as u8;
                annotations.push(Annotation {
                    sample: time,
                    code,
                    symbol: symbol_of(code),
                    subtype: 0,
                    chan,
                    num,
                    aux: String::new(),
                });
            }
            _ => {
                return Err(WfdbError::BadAnnotation {
                    file: file.to_string(),
                    reason: format!("unknown annotation code {code} at byte {}", pos - 2),
                })
            }
        }
    }
    Ok(annotations)
}
