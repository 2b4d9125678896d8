//! Hand-made tiny records in every storage format (bytes written by the test) read back to
//! the same digital values; missing codes become NaN; interleaving, samples per frame, skew,
//! byte offsets and MATLAB v4 files.

mod encode;

use ecgfm_wfdb::{read_record_from, SignalFormat, WfdbError};
use encode::{checksum, encode, source};

const ALL: [SignalFormat; 10] = [
    SignalFormat::Diff8,
    SignalFormat::Int16,
    SignalFormat::Int24,
    SignalFormat::Int32,
    SignalFormat::BigEndian16,
    SignalFormat::Offset8,
    SignalFormat::Offset16,
    SignalFormat::Packed212,
    SignalFormat::Packed310,
    SignalFormat::Packed311,
];

/// Values spanning the format's range (format 8: steps within one signed byte).
fn values(format: SignalFormat, n: usize) -> Vec<i32> {
    let bits = format.default_resolution();
    let max = if format == SignalFormat::Diff8 {
        1000
    } else {
        (1i64 << (bits - 1)) - 1
    };
    (0..n)
        .map(|i| {
            if format == SignalFormat::Diff8 {
                5 + (i as i32 * 37 % 101) - 50
            } else {
                let x = (i as i64 * 7919) % (2 * max + 1) - max;
                x as i32
            }
        })
        .collect()
}

#[test]
fn every_format_round_trips_for_every_length_remainder() {
    for format in ALL {
        for n in [1, 2, 3, 4, 5, 7] {
            let mut samples = values(format, n);
            if let (Some(code), true) = (format.invalid_code(), n > 2) {
                samples[1] = code;
            }
            let initial = 5;
            let header = format!(
                "t 1 100 {n}\nt.dat {} 2(1)/mV 0 0 {initial} {} 0 lead I\n",
                format.code(),
                checksum(&samples)
            );
            let src = source(&[
                ("t.hea", header.into_bytes()),
                ("t.dat", encode(format, &samples, initial)),
            ]);
            let record = read_record_from(&src, "t")
                .unwrap_or_else(|e| panic!("format {} n {n}: {e}", format.code()));
            assert_eq!(record.digital[0], samples, "format {} n {n}", format.code());
            assert_eq!(record.signals[0].description, "lead I");
            let physical = record.physical(0);
            for (d, p) in samples.iter().zip(&physical) {
                if Some(*d) == format.invalid_code() {
                    assert!(p.is_nan());
                } else {
                    assert_eq!(*p, (f64::from(*d) - 1.0) / 2.0);
                }
            }
        }
    }
}

#[test]
fn interleaved_signals_with_samples_per_frame_skew_and_offset() {
    // Frame layout: a a b (a at 2 samples per frame), format 212, 4 frames, 3 header bytes.
    let a = [1, 2, 3, 4, 5, 6, 7, 8];
    let b = [-10, -20, -30, -40];
    let mut flat = Vec::new();
    for f in 0..4 {
        flat.extend([a[2 * f], a[2 * f + 1], b[f]]);
    }
    let mut bytes = vec![0xAA, 0xBB, 0xCC];
    bytes.extend(encode(SignalFormat::Packed212, &flat, 0));
    // b is skewed by one frame: its samples start at frame 1, the last one is missing.
    let header = format!(
        "sk 2 50 4\nsk.dat 212x2+3 100 12 0 0 {} 0 a\nsk.dat 212:1+3 100 12 0 0 {} 0 b\n",
        checksum(&a),
        checksum(&b)
    );
    let src = source(&[("sk.hea", header.into_bytes()), ("sk.dat", bytes)]);
    let record = read_record_from(&src, "sk").unwrap();
    assert_eq!(record.digital[0], a);
    assert_eq!(record.digital[1], [-20, -30, -40, -2048]);
    assert_eq!(record.signal_fs(0), 100.0);
    assert_eq!(record.signal_fs(1), 50.0);
    assert!(record.physical(1)[3].is_nan());
}

#[test]
fn signals_in_separate_files_and_subfolders() {
    let x = [100, -100, 200];
    let y = [7, 8, 9];
    let header = format!(
        "r 2 360 3\nr.d0 16 200 16 0 0 {} 0 x\nr.d1 61 200 16 0 0 {} 0 y\n",
        checksum(&x),
        checksum(&y)
    );
    let src = source(&[
        ("db/sub/r.hea", header.into_bytes()),
        ("db/sub/r.d0", encode(SignalFormat::Int16, &x, 0)),
        ("db/sub/r.d1", encode(SignalFormat::BigEndian16, &y, 0)),
    ]);
    let record = read_record_from(&src, "db/sub/r").unwrap();
    assert_eq!(record.digital, vec![x.to_vec(), y.to_vec()]);
    assert_eq!(record.signal_index("y"), Some(1));
}

/// A MATLAB v4 file holding `rows x cols` int16 values (column-major), named `val`.
fn mat_v4(frames: &[[i16; 2]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for field in [30u32, 2, frames.len() as u32, 0, 4] {
        bytes.extend(field.to_le_bytes());
    }
    bytes.extend(b"val\0");
    for frame in frames {
        for v in frame {
            bytes.extend(v.to_le_bytes());
        }
    }
    bytes
}

#[test]
fn matlab_v4_signal_file() {
    let frames = [[1, -1], [2, -2], [3, -3]];
    for format_field in ["16+24", "16x1+24", "16"] {
        let header = format!(
            "m 2 500 3\nm.mat {format_field} 1000.0(0)/mV 16 0 1 6 0 I\nm.mat {format_field} 1000/mV 16 0 -1 -6 0 II\n"
        );
        let src = source(&[("m.hea", header.into_bytes()), ("m.mat", mat_v4(&frames))]);
        let record = read_record_from(&src, "m").unwrap_or_else(|e| panic!("{format_field}: {e}"));
        assert_eq!(record.digital, vec![vec![1, 2, 3], vec![-1, -2, -3]]);
        assert_eq!(record.physical(1), [-0.001, -0.002, -0.003]);
    }
}

#[test]
fn sample_count_is_inferred_when_the_header_omits_it() {
    let x = [1, 2, 3, 4, 5];
    let src = source(&[
        ("n.hea", b"n 1 100\nn.dat 16\n".to_vec()),
        ("n.dat", encode(SignalFormat::Int16, &x, 0)),
    ]);
    let record = read_record_from(&src, "n").unwrap();
    assert_eq!(record.n_samples, 5);
    assert_eq!(record.digital[0], x);
    assert_eq!(record.signals[0].gain(), 200.0);
    assert_eq!(record.signals[0].units, "mV");
}

/// Format 212 packs two 12-bit samples into three bytes, so a lone third sample needs two
/// more: a 4-byte file with no sample count in its header holds two whole samples, not three.
#[test]
fn a_212_file_ending_in_one_spare_byte_holds_no_extra_sample() {
    let x = [100, -200];
    let mut bytes = encode(SignalFormat::Packed212, &x, 0);
    assert_eq!(bytes.len(), 3);
    bytes.push(0x7F);
    let src = source(&[
        ("p.hea", b"p 1 100\np.dat 212\n".to_vec()),
        ("p.dat", bytes),
    ]);
    let record = read_record_from(&src, "p").unwrap();
    assert_eq!(record.n_samples, 2);
    assert_eq!(record.digital[0], x);
}

/// One format-212 sample takes two bytes (its 12 bits span them), so a header declaring one
/// sample over a 1-byte file is a truncated file that needed 2 bytes.
#[test]
fn one_212_sample_in_one_byte_is_truncated() {
    let src = source(&[
        ("p.hea", b"p 1 100 1\np.dat 212\n".to_vec()),
        ("p.dat", vec![5]),
    ]);
    match read_record_from(&src, "p") {
        Err(WfdbError::Truncated { needed, found, .. }) => assert_eq!((needed, found), (2, 1)),
        other => panic!("{other:?}"),
    }
}

/// A header that omits the initial value means it equals the ADC zero (WFDB header(5)); with
/// format 8, whose bytes are differences from it, the samples are ADC zero 100 plus the
/// running sum of the differences 1, 3, -2, 5.
#[test]
fn an_omitted_initial_value_is_the_adc_zero() {
    let diffs: [i8; 4] = [1, 3, -2, 5];
    let src = source(&[
        ("d.hea", b"d 1 100 4\nd.dat 8 200 8 100\n".to_vec()),
        ("d.dat", diffs.iter().map(|&d| d as u8).collect()),
    ]);
    let record = read_record_from(&src, "d").unwrap();
    assert_eq!(record.digital[0], [101, 104, 102, 107]);
}

/// Skew is counted in frames: a signal of 2 samples per frame skewed by 1 loses its first
/// frame's 2 samples, and its last frame is missing (-2048, format 212's code).
#[test]
fn skew_drops_whole_frames_of_a_signal_with_several_samples_per_frame() {
    let a = [1, 2, 3, 4, 5, 6, 7, 8];
    let header = format!("k 1 50 4\nk.dat 212x2:1 100 12 0 0 {} 0 a\n", checksum(&a));
    let src = source(&[
        ("k.hea", header.into_bytes()),
        ("k.dat", encode(SignalFormat::Packed212, &a, 0)),
    ]);
    let record = read_record_from(&src, "k").unwrap();
    assert_eq!(record.digital[0], [3, 4, 5, 6, 7, 8, -2048, -2048]);
}

/// Each format's missing-sample code is WFDB's (the most negative value the format stores):
/// that value reads as NaN, the next one up as a number.
#[test]
fn the_missing_code_of_each_format_is_wfdbs() {
    let codes = [
        (SignalFormat::Offset8, -128),
        (SignalFormat::Packed310, -512),
        (SignalFormat::Packed311, -512),
        (SignalFormat::Packed212, -2048),
        (SignalFormat::Int16, -32768),
        (SignalFormat::BigEndian16, -32768),
        (SignalFormat::Offset16, -32768),
        (SignalFormat::Int24, -8_388_608),
        (SignalFormat::Int32, i32::MIN),
    ];
    for (format, code) in codes {
        let samples = [code, code + 1, 0];
        let header = format!(
            "c 1 100 3\nc.dat {} 200 0 0 0 {} 0 II\n",
            format.code(),
            checksum(&samples)
        );
        let src = source(&[
            ("c.hea", header.into_bytes()),
            ("c.dat", encode(format, &samples, 0)),
        ]);
        let record = read_record_from(&src, "c").unwrap();
        assert_eq!(record.digital[0], samples, "format {}", format.code());
        let physical = record.physical(0);
        assert!(physical[0].is_nan(), "format {}", format.code());
        assert_eq!(
            physical[1],
            f64::from(code + 1) / 200.0,
            "format {}",
            format.code()
        );
    }
}

/// A skewed signal's samples after the header's last frame are read from the file where it
/// holds them (not marked missing), and the checksum covers the header's frames as stored,
/// before the skew: here 1 + 2 + 3.
#[test]
fn skew_reads_past_the_header_length_where_the_file_goes_on() {
    let stored = [1, 2, 3, 4];
    let header = format!(
        "s 1 100 3\ns.dat 16:1 200 16 0 0 {} 0 II\n",
        checksum(&stored[..3])
    );
    let src = source(&[
        ("s.hea", header.into_bytes()),
        ("s.dat", encode(SignalFormat::Int16, &stored, 0)),
    ]);
    let record = read_record_from(&src, "s").unwrap();
    assert_eq!(record.n_samples, 3);
    assert_eq!(record.digital[0], [2, 3, 4]);
}
