//! The WFDB sample storage formats: how many bytes hold how many samples, how to decode them,
//! and which digital value each format reserves for a missing sample.

/// A signal storage format this reader decodes (the number is the header's format code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalFormat {
    /// 8: 8-bit signed first differences from the header's initial value.
    Diff8,
    /// 16: 16-bit two's complement, little-endian.
    Int16,
    /// 24: 24-bit two's complement, little-endian.
    Int24,
    /// 32: 32-bit two's complement, little-endian.
    Int32,
    /// 61: 16-bit two's complement, big-endian.
    BigEndian16,
    /// 80: 8-bit offset binary (stored byte minus 128).
    Offset8,
    /// 160: 16-bit offset binary, little-endian (stored word minus 32768).
    Offset16,
    /// 212: two 12-bit samples packed in three bytes.
    Packed212,
    /// 310: three 10-bit samples packed in two little-endian 16-bit words.
    Packed310,
    /// 311: three 10-bit samples packed in one little-endian 32-bit word.
    Packed311,
}

impl SignalFormat {
    /// The format for a header format code, or `None` when it is not decoded here.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            8 => Self::Diff8,
            16 => Self::Int16,
            24 => Self::Int24,
            32 => Self::Int32,
            61 => Self::BigEndian16,
            80 => Self::Offset8,
            160 => Self::Offset16,
            212 => Self::Packed212,
            310 => Self::Packed310,
            311 => Self::Packed311,
            _ => return None,
        })
    }

    /// The header format code.
    pub fn code(self) -> u32 {
        match self {
            Self::Diff8 => 8,
            Self::Int16 => 16,
            Self::Int24 => 24,
            Self::Int32 => 32,
            Self::BigEndian16 => 61,
            Self::Offset8 => 80,
            Self::Offset16 => 160,
            Self::Packed212 => 212,
            Self::Packed310 => 310,
            Self::Packed311 => 311,
        }
    }

    /// The digital value that marks a missing sample (format 8 has none).
    pub fn invalid_code(self) -> Option<i32> {
        match self {
            Self::Diff8 => None,
            Self::Offset8 => Some(-128),
            Self::Packed310 | Self::Packed311 => Some(-512),
            Self::Packed212 => Some(-2048),
            Self::Int16 | Self::BigEndian16 | Self::Offset16 => Some(-32768),
            Self::Int24 => Some(-(1 << 23)),
            Self::Int32 => Some(i32::MIN),
        }
    }

    /// The ADC resolution (bits) assumed when the header leaves it out.
    pub fn default_resolution(self) -> u32 {
        match self {
            Self::Diff8 | Self::Offset8 => 8,
            Self::Packed310 | Self::Packed311 => 10,
            Self::Packed212 => 12,
            Self::Int16 | Self::BigEndian16 | Self::Offset16 => 16,
            Self::Int24 => 24,
            Self::Int32 => 32,
        }
    }

    /// How many whole samples `n_bytes` bytes hold (packed formats may end in a partial group).
    pub fn samples_in(self, n_bytes: usize) -> usize {
        match self {
            Self::Diff8 | Self::Offset8 => n_bytes,
            Self::Int16 | Self::BigEndian16 | Self::Offset16 => n_bytes / 2,
            Self::Int24 => n_bytes / 3,
            Self::Int32 => n_bytes / 4,
            Self::Packed212 => n_bytes / 3 * 2 + usize::from(n_bytes % 3 >= 2),
            Self::Packed310 => n_bytes / 4 * 3 + usize::from(n_bytes % 4 >= 2),
            Self::Packed311 => n_bytes / 4 * 3 + (n_bytes % 4).saturating_sub(1),
        }
    }

    /// How many bytes `n_samples` samples occupy (`usize::MAX` when more).
    pub fn bytes_for(self, n_samples: usize) -> usize {
        match self {
            Self::Diff8 | Self::Offset8 => n_samples,
            Self::Int16 | Self::BigEndian16 | Self::Offset16 => n_samples.saturating_mul(2),
            Self::Int24 => n_samples.saturating_mul(3),
            Self::Int32 => n_samples.saturating_mul(4),
            Self::Packed212 => (n_samples / 2 * 3).saturating_add(2 * (n_samples % 2)),
            Self::Packed310 => (n_samples / 3)
                .saturating_mul(4)
                .saturating_add([0, 2, 4][n_samples % 3]),
            Self::Packed311 => (n_samples / 3)
                .saturating_mul(4)
                .saturating_add([0, 2, 3][n_samples % 3]),
        }
    }

    /// Decodes the first `count` samples of `bytes` (which must hold them: see
    /// [`samples_in`](Self::samples_in)). Format 8 yields the raw differences.
    pub fn decode(self, bytes: &[u8], count: usize) -> Vec<i32> {
        assert!(
            self.samples_in(bytes.len()) >= count,
            "decode past the data"
        );
        match self {
            Self::Diff8 => bytes[..count].iter().map(|&b| i32::from(b as i8)).collect(),
            Self::Offset8 => bytes[..count].iter().map(|&b| i32::from(b) - 128).collect(),
            Self::Int16 => chunks(bytes, 2, count, |c| {
                i32::from(i16::from_le_bytes([c[0], c[1]]))
            }),
            Self::BigEndian16 => chunks(bytes, 2, count, |c| {
                i32::from(i16::from_be_bytes([c[0], c[1]]))
            }),
            Self::Offset16 => chunks(bytes, 2, count, |c| {
                i32::from(u16::from_le_bytes([c[0], c[1]])) - 32768
            }),
            Self::Int24 => chunks(bytes, 3, count, |c| {
                i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8
            }),
            Self::Int32 => chunks(bytes, 4, count, |c| {
                i32::from_le_bytes([c[0], c[1], c[2], c[3]])
            }),
            Self::Packed212 => decode_212(bytes, count),
            Self::Packed310 => decode_310(bytes, count),
            Self::Packed311 => decode_311(bytes, count),
        }
    }
}

fn chunks(bytes: &[u8], width: usize, count: usize, f: impl Fn(&[u8]) -> i32) -> Vec<i32> {
    bytes[..count * width].chunks_exact(width).map(f).collect()
}

/// Sign-extends the low `bits` bits of `value`.
fn sign_extend(value: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    ((value << shift) as i32) >> shift
}

fn byte(bytes: &[u8], i: usize) -> u32 {
    bytes.get(i).copied().map_or(0, u32::from)
}

fn decode_212(bytes: &[u8], count: usize) -> Vec<i32> {
    (0..count)
        .map(|i| {
            let base = i / 2 * 3;
            let middle = byte(bytes, base + 1);
            let raw = if i % 2 == 0 {
                byte(bytes, base) | (middle & 0x0f) << 8
            } else {
                byte(bytes, base + 2) | (middle & 0xf0) << 4
            };
            sign_extend(raw, 12)
        })
        .collect()
}

fn decode_310(bytes: &[u8], count: usize) -> Vec<i32> {
    (0..count)
        .map(|i| {
            let base = i / 3 * 4;
            let w0 = byte(bytes, base) | byte(bytes, base + 1) << 8;
            let w1 = byte(bytes, base + 2) | byte(bytes, base + 3) << 8;
            let raw = match i % 3 {
                0 => (w0 >> 1) & 0x3ff,
                1 => (w1 >> 1) & 0x3ff,
                _ => ((w0 >> 11) & 0x1f) | ((w1 >> 6) & 0x3e0),
            };
            sign_extend(raw, 10)
        })
        .collect()
}

fn decode_311(bytes: &[u8], count: usize) -> Vec<i32> {
    (0..count)
        .map(|i| {
            let base = i / 3 * 4;
            let word = (0..4).fold(0u32, |w, k| w | byte(bytes, base + k) << (8 * k));
            sign_extend((word >> (10 * (i % 3))) & 0x3ff, 10)
        })
        .collect()
}
