//! Reading from in-memory bytes and closures (as ingest does from object stores), channel
//! selection, multi-segment records (layout, gaps, differing gains), and the rdsamp CSV.

mod encode;

use ecgfm_wfdb::{
    read_record_from, read_record_with, write_rdsamp_csv, ReadOptions, SignalFormat, WfdbError,
};
use encode::{checksum, encode, source};

#[test]
fn closure_source_fetches_only_needed_files() {
    let files = source(&[
        (
            "c.hea",
            b"c 2 100 2\nc.d0 16 200 16 0 0 3 0 I\nc.d1 16 200 16 0 0 0 0 II\n".to_vec(),
        ),
        ("c.d0", encode(SignalFormat::Int16, &[1, 2], 0)),
    ]);
    let fetched = std::cell::RefCell::new(Vec::new());
    let fetch = |name: &str| -> Result<Vec<u8>, WfdbError> {
        fetched.borrow_mut().push(name.to_string());
        ecgfm_wfdb::RecordSource::fetch(&files, name)
    };
    let options = ReadOptions {
        channels: Some(vec![0]),
        ..Default::default()
    };
    let record = read_record_with(&fetch, "c", &options).unwrap();
    assert_eq!(record.digital, vec![vec![1, 2]]);
    assert_eq!(*fetched.borrow(), ["c.hea", "c.d0"]);
}

/// A single-segment record `name` with signals `(description, gain, samples)` in format 16.
fn segment(name: &str, signals: &[(&str, u32, Vec<i32>)]) -> Vec<(String, Vec<u8>)> {
    let n = signals[0].2.len();
    let mut header = format!("{name} {} 100 {n}\n", signals.len());
    let mut flat = Vec::new();
    for frame in 0..n {
        flat.extend(signals.iter().map(|s| s.2[frame]));
    }
    for (desc, gain, samples) in signals {
        header += &format!(
            "{name}.dat 16 {gain} 16 0 0 {} 0 {desc}\n",
            checksum(samples)
        );
    }
    vec![
        (format!("{name}.hea"), header.into_bytes()),
        (format!("{name}.dat"), encode(SignalFormat::Int16, &flat, 0)),
    ]
}

#[test]
fn multi_segment_record_with_layout_gap_and_missing_signal() {
    let mut files = vec![
        (
            "m.hea".to_string(),
            b"m/4 2 100 7\nm_layout 0\nm_1 2\n~ 2\nm_2 3\n".to_vec(),
        ),
        (
            "m_layout.hea".to_string(),
            b"m_layout 2 100 0\n~ 0 100/mV 16 0 0 0 0 II\n~ 0 10/mmHg 16 0 0 0 0 ABP\n".to_vec(),
        ),
    ];
    files.extend(segment("m_1", &[("II", 100, vec![1, 2])]));
    files.extend(segment(
        "m_2",
        &[
            ("ABP", 20, vec![20, 40, -32768]),
            ("II", 100, vec![5, 6, 7]),
        ],
    ));
    let mut src = ecgfm_wfdb::MemorySource::new();
    for (name, bytes) in files {
        src.insert(name, bytes);
    }
    let record = read_record_from(&src, "m").unwrap();
    let missing = i32::MIN;
    assert_eq!(record.n_samples, 7);
    assert_eq!(record.signals[0].description, "II");
    assert_eq!(record.digital[0], [1, 2, missing, missing, 5, 6, 7]);
    // ABP is stored with gain 20 in m_2, finer than the layout's 10: the merged signal keeps 20.
    assert_eq!(record.signals[1].gain(), 20.0);
    assert_eq!(
        record.digital[1],
        [missing, missing, missing, missing, 20, 40, missing]
    );
    let abp = record.physical(1);
    assert!(abp[..4].iter().all(|p| p.is_nan()) && abp[6].is_nan());
    assert_eq!(&abp[4..6], [1.0, 2.0]);
}

#[test]
fn a_segment_with_a_finer_gain_keeps_its_resolution() {
    // Layout 200/mV; m_1 stores II at 1000/mV (82 = 0.082 mV), m_2 at 200/mV (the layout's).
    let mut files = vec![
        (
            "m.hea".to_string(),
            b"m/3 1 100 4\nm_layout 0\nm_1 2\nm_2 2\n".to_vec(),
        ),
        (
            "m_layout.hea".to_string(),
            b"m_layout 1 100 0\n~ 0 200/mV 16 0 0 0 0 II\n".to_vec(),
        ),
    ];
    files.extend(segment("m_1", &[("II", 1000, vec![82, -3])]));
    files.extend(segment("m_2", &[("II", 200, vec![41, 1])]));
    let mut src = ecgfm_wfdb::MemorySource::new();
    for (name, bytes) in files {
        src.insert(name, bytes);
    }
    let record = read_record_from(&src, "m").unwrap();
    assert_eq!(record.signals[0].gain(), 1000.0);
    assert_eq!(record.digital[0], [82, -3, 205, 5]);
    let ii = record.physical(0);
    let want = [0.082, -0.003, 0.205, 0.005];
    assert!(
        ii.iter().zip(want).all(|(p, w)| (p - w).abs() < 1e-12),
        "{ii:?}"
    );
}

/// Values of a segment at a coarser gain are re-coded to the merged (finest) gain by rounding,
/// not truncating: at 200/mV, 1 and -1 are +-0.005 mV, which is +-1.5 at 300/mV, so +-2.
#[test]
fn recoding_to_a_finer_gain_rounds_half_steps_away_from_zero() {
    let mut src = ecgfm_wfdb::MemorySource::new();
    src.insert("m.hea", b"m/2 1 100 4\nm_1 2\nm_2 2\n".to_vec());
    for (name, bytes) in segment("m_1", &[("II", 200, vec![1, -1])])
        .into_iter()
        .chain(segment("m_2", &[("II", 300, vec![3, -3])]))
    {
        src.insert(name, bytes);
    }
    let record = read_record_from(&src, "m").unwrap();
    assert_eq!(record.signals[0].gain(), 300.0);
    assert_eq!(record.digital[0], [2, -2, 3, -3]);
}

#[test]
fn rdsamp_csv_in_physical_and_digital_units() {
    // Signal a has 2 samples per frame (averaged per frame); b has a missing sample.
    let flat = [10, 30, 200, 50, 70, -32768];
    let header = format!(
        "r 2 100 2\nr.dat 16x2 100(10)/mV 16 0 0 {} 0 a\nr.dat 16 200 16 0 0 {} 0 lead, b\n",
        checksum(&[10, 30, 50, 70]),
        checksum(&[200, -32768])
    );
    let src = source(&[
        ("r.hea", header.into_bytes()),
        ("r.dat", encode(SignalFormat::Int16, &flat, 0)),
    ]);
    let record = read_record_from(&src, "r").unwrap();
    let mut physical = Vec::new();
    write_rdsamp_csv(&record, false, &mut physical).unwrap();
    assert_eq!(
        String::from_utf8(physical).unwrap(),
        "a,\"lead, b\"\n0.1,1\n0.5,\n"
    );
    let mut digital = Vec::new();
    write_rdsamp_csv(&record, true, &mut digital).unwrap();
    assert_eq!(
        String::from_utf8(digital).unwrap(),
        "a,\"lead, b\"\n20,200\n60,\n"
    );
}

/// A frame's mean truncates toward zero like WFDB's `getvec`: -1 and -2 average to -1 (not -2),
/// 1 and 2 to 1.
#[test]
fn rdsamp_frame_means_of_negative_samples_truncate_toward_zero() {
    let flat = [-1, -2, 1, 2];
    let header = format!(
        "r 1 100 2\nr.dat 16x2 100/mV 16 0 0 {} 0 a\n",
        checksum(&flat)
    );
    let src = source(&[
        ("r.hea", header.into_bytes()),
        ("r.dat", encode(SignalFormat::Int16, &flat, 0)),
    ]);
    let record = read_record_from(&src, "r").unwrap();
    let mut digital = Vec::new();
    write_rdsamp_csv(&record, true, &mut digital).unwrap();
    assert_eq!(String::from_utf8(digital).unwrap(), "a\n-1\n1\n");
    let mut physical = Vec::new();
    write_rdsamp_csv(&record, false, &mut physical).unwrap();
    assert_eq!(String::from_utf8(physical).unwrap(), "a\n-0.01\n0.01\n");
}

/// A record `big` whose segments are `seg` (2 frames of II and V1) and the given `tail` lines.
fn multi_segment_source(record_line: &str, tail: &str) -> ecgfm_wfdb::MemorySource {
    let mut src = ecgfm_wfdb::MemorySource::new();
    src.insert(
        "big.hea",
        format!("{record_line}\nseg 2\n{tail}").into_bytes(),
    );
    for (name, bytes) in segment("seg", &[("II", 100, vec![1, 2]), ("V1", 100, vec![3, 4])]) {
        src.insert(name, bytes);
    }
    src
}

#[test]
fn a_huge_gap_segment_is_a_bad_header_never_an_allocation() {
    // 10^12 frames of 2 signals would be 8 TB; 6 * 10^8 frames (1.2 * 10^9 samples) is just
    // past the bound and would otherwise be allocated and filled.
    for gap in ["1000000000000", "600000000"] {
        let src = multi_segment_source("big/2 2 100", &format!("~ {gap}\n"));
        match read_record_from(&src, "big").unwrap_err() {
            WfdbError::BadHeader { file, line, reason } => {
                assert_eq!((file.as_str(), line), ("big.hea", 3), "{reason}");
                assert!(reason.contains("segment ~ of"), "{reason}");
            }
            other => panic!("{gap}: {other}"),
        }
    }
    // A gap within the bound is read as missing samples.
    let src = multi_segment_source("big/2 2 100", "~ 3\n");
    let record = read_record_from(&src, "big").unwrap();
    assert_eq!(record.digital[0], [1, 2, i32::MIN, i32::MIN, i32::MIN]);
}

/// A segment whose own header has more (or fewer) frames than the record's segment line says is
/// refused: its samples would not fit the record's length.
#[test]
fn a_segment_must_have_the_length_its_segment_line_gives() {
    for declared in [1, 3] {
        let mut src = ecgfm_wfdb::MemorySource::new();
        src.insert(
            "big.hea",
            format!("big/1 1 100\nseg {declared}\n").into_bytes(),
        );
        for (name, bytes) in segment("seg", &[("II", 100, vec![1, 2])]) {
            src.insert(name, bytes);
        }
        match read_record_from(&src, "big").unwrap_err() {
            WfdbError::Unsupported { file, reason } => {
                assert_eq!(file, "big.hea");
                assert_eq!(
                    reason,
                    format!("segment seg has 2 frames, the record header says {declared}")
                );
            }
            other => panic!("{declared}: {other}"),
        }
    }
}

#[test]
fn segment_lengths_must_add_up_to_the_record_length() {
    let src = multi_segment_source("big/2 2 100 5000", "~ 3\n");
    match read_record_from(&src, "big").unwrap_err() {
        WfdbError::BadHeader { file, line, reason } => {
            assert_eq!((file.as_str(), line), ("big.hea", 1));
            assert_eq!(
                reason,
                "the record has 5000 frames but its segment lengths add up to 5"
            );
        }
        other => panic!("{other}"),
    }
    let overflowing = multi_segment_source("big/3 2 100", "~ 18446744073709551615\n~ 1\n");
    match read_record_from(&overflowing, "big").unwrap_err() {
        WfdbError::BadHeader { line, .. } => assert_eq!(line, 3),
        other => panic!("{other}"),
    }
}

#[test]
fn without_a_layout_segment_signals_are_matched_by_position() {
    // Both segments describe both signals as `ECG` (as MIMIC-style headers may): WFDB matches a
    // fixed layout by position, so the second signal keeps its own samples.
    let mut src = ecgfm_wfdb::MemorySource::new();
    src.insert("f.hea", b"f/2 2 100 4\nf_1 2\nf_2 2\n".to_vec());
    for (name, a, b) in [("f_1", [1, 2], [10, 20]), ("f_2", [3, 4], [30, 40])] {
        for (file, bytes) in segment(name, &[("ECG", 100, a.to_vec()), ("ECG", 100, b.to_vec())]) {
            src.insert(file, bytes);
        }
    }
    let record = read_record_from(&src, "f").unwrap();
    assert_eq!(record.digital, [vec![1, 2, 3, 4], vec![10, 20, 30, 40]]);
    let options = ReadOptions {
        channels: Some(vec![1]),
        ..Default::default()
    };
    let second = read_record_with(&src, "f", &options).unwrap();
    assert_eq!(second.digital, [vec![10, 20, 30, 40]]);

    // A segment with another number of signals does not fit a fixed layout.
    for (file, bytes) in segment("f_2", &[("ECG", 100, vec![3, 4])]) {
        src.insert(file, bytes);
    }
    match read_record_from(&src, "f").unwrap_err() {
        WfdbError::Unsupported { file, reason } => {
            assert_eq!(file, "f.hea");
            assert!(
                reason.contains("segment f_2 has 1 signals but the first has 2"),
                "{reason}"
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_variable_layout_refuses_a_segment_with_a_repeated_description() {
    let mut src = ecgfm_wfdb::MemorySource::new();
    src.insert("v.hea", b"v/2 1 100 2\nv_layout 0\nv_1 2\n".to_vec());
    src.insert(
        "v_layout.hea",
        b"v_layout 1 100 0\n~ 0 100/mV 16 0 0 0 0 II\n".to_vec(),
    );
    for (file, bytes) in segment("v_1", &[("II", 100, vec![1, 2]), ("II", 100, vec![3, 4])]) {
        src.insert(file, bytes);
    }
    match read_record_from(&src, "v").unwrap_err() {
        WfdbError::Unsupported { reason, .. } => {
            assert!(
                reason.contains("segment v_1 has several signals described `II`"),
                "{reason}"
            )
        }
        other => panic!("{other}"),
    }
}
