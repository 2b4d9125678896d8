//! Bad input gives the right error, naming the file: missing file, truncated data (and the bytes
//! a packed format needs), bad header line (a skew past the record), checksum mismatch (not
//! verified without a sample count), unsupported format, inconsistent or truncated MATLAB file,
//! bad annotations.

mod encode;

use ecgfm_wfdb::{parse_annotations, read_record_from, SignalFormat, WfdbError};
use encode::{checksum, encode, source};

fn one_signal(header: &str, data: Vec<u8>) -> Result<ecgfm_wfdb::Record, WfdbError> {
    read_record_from(
        &source(&[("e.hea", header.as_bytes().to_vec()), ("e.dat", data)]),
        "e",
    )
}

#[test]
fn missing_header_and_missing_signal_file() {
    let empty = source(&[]);
    match read_record_from(&empty, "nothing").unwrap_err() {
        WfdbError::NotFound { file } => assert_eq!(file, "nothing.hea"),
        other => panic!("{other}"),
    }
    let header_only = source(&[("e.hea", b"e 1 100 2\ne.dat 16\n".to_vec())]);
    match read_record_from(&header_only, "e").unwrap_err() {
        WfdbError::NotFound { file } => assert_eq!(file, "e.dat"),
        other => panic!("{other}"),
    }
}

#[test]
fn truncated_signal_file() {
    let data = encode(SignalFormat::Int16, &[1, 2, 3], 0);
    match one_signal("e 1 100 4\ne.dat 16\n", data).unwrap_err() {
        WfdbError::Truncated {
            file,
            needed,
            found,
        } => assert_eq!((file.as_str(), needed, found), ("e.dat", 8, 6)),
        other => panic!("{other}"),
    }
}

/// A packed format's samples span whole bytes of their group: 3 samples of 212 need 5 bytes,
/// 2 of 310 need both 16-bit words (4 bytes), 2 of 311 the first 3 bytes of the 32-bit word,
/// 4 of 310 a whole group and one more word (6 bytes).
#[test]
fn truncated_packed_files_need_the_bytes_their_samples_span() {
    for (format, n, present, needed) in [
        (212, 3, 3, 5),
        (310, 2, 2, 4),
        (311, 2, 2, 3),
        (310, 4, 4, 6),
    ] {
        let header = format!("e 1 100 {n}\ne.dat {format}\n");
        match one_signal(&header, vec![0; present]).unwrap_err() {
            WfdbError::Truncated {
                needed: want,
                found,
                ..
            } => {
                assert_eq!(
                    (want, found),
                    (needed, present as u64),
                    "format {format}, {n} samples"
                )
            }
            other => panic!("format {format}: {other}"),
        }
    }
}

#[test]
fn bad_header_lines_are_numbered() {
    let cases = [
        ("e 1 abc 2\ne.dat 16\n", 1, "sampling frequency"),
        (
            "e 1 0 2\ne.dat 16\n",
            1,
            "sampling frequency 0 is not positive",
        ),
        (
            "# first a comment\ne 1 100 2\ne.dat 16 x1/mV\n",
            3,
            "ADC gain",
        ),
        ("e 2 100 2\ne.dat 16\n", 3, "expected 2 signal lines"),
        ("e 1 100 2\ne.dat 16\ne.dat 16\n", 3, "more than"),
        ("e 1 100 2\ne.dat 16q\n", 2, "format field"),
        (
            "e 1 100 2\ne.dat 21\u{fffd}x4\n",
            2,
            "unexpected `\u{fffd}`",
        ),
        ("", 1, "no record line"),
        (
            "e 1 100 2\ne.dat 16 nan/mV\n",
            2,
            "ADC gain `nan` is not a finite",
        ),
        (
            "e 1 100 2\ne.dat 16 inf(0)/mV\n",
            2,
            "ADC gain `inf` is not a finite",
        ),
        (
            "e 1 100 2\ne.dat 16 -Infinity\n",
            2,
            "ADC gain `-Infinity` is not a finite",
        ),
        (
            "e 1 100/NaN 2\ne.dat 16\n",
            1,
            "counter frequency `NaN` is not a finite",
        ),
        (
            "e 1 100 2\n../../../etc/passwd 16\n",
            2,
            "signal file `../../../etc/passwd` is not a file name in the header's folder",
        ),
        ("e 1 100 2\n/data/e.dat 16\n", 2, "is not a file name"),
        ("e 1 100 2\nsub\\e.dat 16\n", 2, "is not a file name"),
        (
            "e/1 1 100 2\n../e 2\n",
            2,
            "segment `../e` is not a file name",
        ),
    ];
    for (header, want_line, want_reason) in cases {
        match one_signal(header, vec![0; 4]).unwrap_err() {
            WfdbError::BadHeader { file, line, reason } => {
                assert_eq!(file, "e.hea");
                assert_eq!(line, want_line, "{header:?}: {reason}");
                assert!(reason.contains(want_reason), "{header:?}: {reason}");
            }
            other => panic!("{header:?}: {other}"),
        }
    }
}

#[test]
fn checksum_mismatch_names_the_signal_and_can_be_ignored() {
    let samples = [10, 20, 30];
    let wrong = checksum(&samples) + 1;
    let header = format!("e 1 100 3\ne.dat 16 200 16 0 0 {wrong} 0 II\n");
    let data = encode(SignalFormat::Int16, &samples, 0);
    match one_signal(&header, data.clone()).unwrap_err() {
        WfdbError::ChecksumMismatch {
            file,
            signal,
            name,
            expected,
            actual,
            file_longer: None,
        } => {
            assert_eq!((file.as_str(), signal, name.as_str()), ("e.hea", 0, "II"));
            assert_eq!((expected, actual), (61, 60));
        }
        other => panic!("{other}"),
    }
    // A header whose sample count is lower than the file's: the mismatch says so.
    let sum_of_two = checksum(&samples[..2]) + 1;
    let short = format!("e 1 100 2\ne.dat 16 200 16 0 0 {sum_of_two} 0 II\n");
    let err = one_signal(&short, data.clone()).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "; its signal file holds 3 samples of it, the header says 2: the header's sample \
             count may be wrong"
        ),
        "{err}"
    );
    let src = source(&[("e.hea", header.into_bytes()), ("e.dat", data)]);
    let options = ecgfm_wfdb::ReadOptions {
        ignore_checksums: true,
        ..Default::default()
    };
    let record = ecgfm_wfdb::read_record_with(&src, "e", &options).unwrap();
    assert_eq!(record.digital[0], samples);
}

#[test]
fn huge_skew_is_a_bad_header_or_a_missing_signal_never_a_wrap() {
    let data = encode(SignalFormat::Int16, &[1, 2, 3], 0);
    for skew in ["3", "18446744073709551615"] {
        let header = format!("e 1 100 3\ne.dat 16:{skew}\n");
        match one_signal(&header, data.clone()).unwrap_err() {
            WfdbError::BadHeader { file, line, reason } => {
                assert_eq!((file.as_str(), line), ("e.hea", 2));
                assert!(reason.contains(&format!("skew {skew}")), "{reason}");
                assert!(reason.contains("3 samples"), "{reason}");
            }
            other => panic!("skew {skew}: {other}"),
        }
    }
    // Without a sample count the file decides the length: the signal is skewed past its end.
    let record = one_signal("e 1 100\ne.dat 16:18446744073709551615\n", data).unwrap();
    assert_eq!(record.digital[0], [-32768; 3]);
}

#[test]
fn a_sample_count_of_0_is_unspecified_and_checksums_are_not_verified() {
    // header(5): a count "zero or missing" is unspecified and disables checksum verification.
    let samples = [10, 20, 30];
    let data = encode(SignalFormat::Int16, &samples, 0);
    for count in [" 0", ""] {
        let header = format!("e 1 100{count}\ne.dat 16 200 16 0 0 12345 0 II\n");
        let record = one_signal(&header, data.clone()).unwrap();
        assert_eq!(record.n_samples, 3, "{header:?}");
        assert_eq!(record.digital[0], samples);
    }
    let header = ecgfm_wfdb::Header::parse("e 1 100 0 10:11:12\ne.dat 16\n", "e.hea").unwrap();
    assert_eq!(header.n_samples, None);
    assert_eq!(header.base_time.as_deref(), Some("10:11:12"));
}

#[test]
fn unsigned_16_bit_checksum_is_accepted() {
    // PTB-XL writes checksums as unsigned 16-bit numbers (e.g. 64050 for -1486).
    let samples = [-1000, -486];
    let data = encode(SignalFormat::Int16, &samples, 0);
    let record = one_signal("e 1 100 2\ne.dat 16 200 16 0 0 64050 0 I\n", data).unwrap();
    assert_eq!(record.digital[0], samples);
}

#[test]
fn unsupported_format_and_bad_channel() {
    match one_signal("e 1 100 2\ne.dat 508\n", vec![0; 8]).unwrap_err() {
        WfdbError::UnsupportedFormat { file, format } => {
            assert_eq!((file.as_str(), format.as_str()), ("e.dat", "508"))
        }
        other => panic!("{other}"),
    }
    let src = source(&[
        ("e.hea", b"e 1 100 2\ne.dat 16\n".to_vec()),
        ("e.dat", vec![0; 4]),
    ]);
    let options = ecgfm_wfdb::ReadOptions {
        channels: Some(vec![1]),
        ..Default::default()
    };
    match ecgfm_wfdb::read_record_with(&src, "e", &options).unwrap_err() {
        WfdbError::NoSuchChannel { channel: 1, .. } => {}
        other => panic!("{other}"),
    }
}

/// A MATLAB v4 file of one int16 row of `columns` columns named `val` whose data are the two
/// samples 1 and 2 (4 bytes after the 24-byte header).
fn int16_matrix(columns: u32) -> Vec<u8> {
    let mut mat = Vec::new();
    for field in [30u32, 1, columns, 0, 4] {
        mat.extend(field.to_le_bytes());
    }
    mat.extend(b"val\0\x01\x00\x02\x00");
    mat
}

#[test]
fn matlab_header_disagreeing_with_wfdb_header() {
    let mat = int16_matrix(2);
    let src = |header: &str| {
        source(&[
            ("m.hea", header.as_bytes().to_vec()),
            ("m.mat", mat.clone()),
        ])
    };
    let cases = [
        ("m 1 100 2\nm.mat 16+20\n", "header says +20"),
        ("m 1 100 2\nm.mat 61+24\n", "holds format 16"),
        ("m 2 100 1\nm.mat 16+24\nm.mat 16+24\n", "1 rows"),
    ];
    for (header, want) in cases {
        match read_record_from(&src(header), "m").unwrap_err() {
            WfdbError::BadMatFile { file, reason } => {
                assert_eq!(file, "m.mat");
                assert!(reason.contains(want), "{reason}");
            }
            other => panic!("{header:?}: {other}"),
        }
    }
}

/// A MATLAB file shorter than its matrix header says is truncated even when the WFDB header gives
/// no sample count: 3 columns of one int16 row need 6 bytes after the 24-byte header, 4 are there.
#[test]
fn a_matlab_file_shorter_than_its_matrix_is_truncated() {
    let mat = int16_matrix(3);
    let src = source(&[
        ("m.hea", b"m 1 100\nm.mat 16+24\n".to_vec()),
        ("m.mat", mat),
    ]);
    match read_record_from(&src, "m").unwrap_err() {
        WfdbError::Truncated {
            file,
            needed,
            found,
        } => assert_eq!((file.as_str(), needed, found), ("m.mat", 30, 28)),
        other => panic!("{other}"),
    }
}

#[test]
fn truncated_and_malformed_annotation_files() {
    // N at sample 5, then an AUX pseudo-code promising 6 bytes of which only 2 exist.
    let bytes = [5, 1 << 2, 6, 63 << 2, b'(', b'N'];
    match parse_annotations(&bytes, "x.atr").unwrap_err() {
        WfdbError::Truncated { file, .. } => assert_eq!(file, "x.atr"),
        other => panic!("{other}"),
    }
    match parse_annotations(&[0, 60 << 2], "x.atr").unwrap_err() {
        WfdbError::BadAnnotation { file, reason } => {
            assert_eq!(file, "x.atr");
            assert!(reason.contains("before any annotation"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_huge_sample_count_is_truncated_with_a_saturated_byte_count() {
    let data = encode(SignalFormat::Int16, &[1, 2, 3, 4], 0);
    let err = one_signal("e 2 100 18446744073709551615\ne.dat 16\ne.dat 16\n", data).unwrap_err();
    assert_eq!(
        err.to_string(),
        "e.dat: truncated: at least 18446744073709551615 bytes needed, only 8 present"
    );
}
