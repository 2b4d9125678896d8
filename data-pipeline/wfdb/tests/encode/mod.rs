//! Test-only writers of WFDB sample bytes (the inverse of the reader) and of tiny in-memory
//! records, so unit tests build their inputs byte by byte.

use ecgfm_wfdb::{MemorySource, SignalFormat};

/// Encodes samples (format 8: absolute values, differenced from `initial`) in `format`.
pub fn encode(format: SignalFormat, samples: &[i32], initial: i32) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        SignalFormat::Diff8 => {
            let mut previous = initial;
            for &s in samples {
                out.push((s - previous) as i8 as u8);
                previous = s;
            }
        }
        SignalFormat::Offset8 => out.extend(samples.iter().map(|&s| (s + 128) as u8)),
        SignalFormat::Int16 => samples
            .iter()
            .for_each(|&s| out.extend((s as i16).to_le_bytes())),
        SignalFormat::BigEndian16 => samples
            .iter()
            .for_each(|&s| out.extend((s as i16).to_be_bytes())),
        SignalFormat::Offset16 => samples
            .iter()
            .for_each(|&s| out.extend(((s + 32768) as u16).to_le_bytes())),
        SignalFormat::Int24 => samples
            .iter()
            .for_each(|&s| out.extend(&s.to_le_bytes()[..3])),
        SignalFormat::Int32 => samples.iter().for_each(|&s| out.extend(s.to_le_bytes())),
        SignalFormat::Packed212 => {
            for pair in samples.chunks(2) {
                let a = pair[0] as u32;
                let b = pair.get(1).map_or(0, |&b| b as u32);
                out.push(a as u8);
                out.push((((a >> 8) & 0x0f) | ((b >> 4) & 0xf0)) as u8);
                if pair.len() == 2 {
                    out.push(b as u8);
                }
            }
        }
        SignalFormat::Packed310 => {
            for group in samples.chunks(3) {
                let s = |i: usize| group.get(i).map_or(0, |&v| v as u32 & 0x3ff);
                let w0 = (s(0) << 1) | ((s(2) & 0x1f) << 11);
                let w1 = (s(1) << 1) | ((s(2) >> 5) << 11);
                out.extend((w0 as u16).to_le_bytes());
                if group.len() > 1 {
                    out.extend((w1 as u16).to_le_bytes());
                }
            }
        }
        SignalFormat::Packed311 => {
            for group in samples.chunks(3) {
                let s = |i: usize| group.get(i).map_or(0, |&v| v as u32 & 0x3ff);
                let word = s(0) | (s(1) << 10) | (s(2) << 20);
                out.extend(&word.to_le_bytes()[..[0, 2, 3, 4][group.len()]]);
            }
        }
    }
    out
}

/// The header checksum of `samples` (16-bit wrapped sum).
pub fn checksum(samples: &[i32]) -> i32 {
    i32::from(samples.iter().fold(0i64, |a, &s| a + i64::from(s)) as i16)
}

/// A memory source holding `files`.
pub fn source(files: &[(&str, Vec<u8>)]) -> MemorySource {
    let mut source = MemorySource::new();
    for (name, bytes) in files {
        source.insert(*name, bytes.clone());
    }
    source
}
