//! Result files are JSON, and reports, `ecgfm compare`, the sweep's analysis and the tests read
//! their numbers back as f64: every f64 must come back with the bits it was written with.
//! serde_json's default parser is off by one unit in the last place for some inputs; its
//! `float_roundtrip` feature (enabled in every crate's Cargo.toml) is exact.

/// A million f64s of every magnitude a metric, a loss or a FLOP count takes, written as JSON and
/// read back, are the same bits.
#[test]
fn f64s_written_as_json_read_back_bitwise() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut differ = Vec::new();
    for i in 0..1_000_000u32 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // A uniform mantissa at decimal exponents from 1e-8 to 1e16.
        let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
        let x = unit * 10f64.powi((i % 25) as i32 - 8);
        let text = serde_json::to_string(&x).unwrap();
        let back: f64 = serde_json::from_str(&text).unwrap();
        if back.to_bits() != x.to_bits() {
            differ.push(format!("{x:?} written {text} read {back:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of 1,000,000 f64s read back changed, e.g. {:?}",
        differ.len(),
        &differ[..differ.len().min(3)]
    );
}
