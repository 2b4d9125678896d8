//! Header parsing details (record-line fields, every signal-line field, comments) and
//! hand-made annotation files using every pseudo-code.

use ecgfm_wfdb::{parse_annotations, Header};

#[test]
fn record_and_signal_lines_with_every_field() {
    let text = "# before\n\
        rec 2 360/180(12) 650000 10:11:12.5 01/02/2003\n\
        rec.dat 212x4:3+512 2963.77(-1605)/mmHg 11 1024 995 -22131 64 MLII lead, first\n\
        \n\
        other.dat 16\n\
        # Age: 74\n\
        #Sex: F\n";
    let h = Header::parse(text, "rec.hea").unwrap();
    assert_eq!(h.record_name, "rec");
    assert_eq!((h.n_signals, h.fs, h.n_samples), (2, 360.0, Some(650000)));
    assert_eq!((h.counter_freq, h.base_counter), (Some(180.0), Some(12.0)));
    assert_eq!(h.base_time.as_deref(), Some("10:11:12.5"));
    assert_eq!(h.base_date.as_deref(), Some("01/02/2003"));
    assert_eq!(h.comments, ["before", "Age: 74", "Sex: F"]);
    let s = &h.signals[0];
    assert_eq!((s.file_name.as_str(), s.format_code), ("rec.dat", 212));
    assert_eq!((s.samples_per_frame, s.skew, s.byte_offset), (4, 3, 512));
    assert_eq!(
        (s.adc_gain, s.baseline, s.units.as_str()),
        (2963.77, -1605, "mmHg")
    );
    assert_eq!(
        (s.adc_resolution, s.adc_zero, s.initial_value),
        (11, 1024, 995)
    );
    assert_eq!((s.checksum, s.block_size), (Some(-22131), 64));
    assert_eq!(s.description, "MLII lead, first");
    let d = &h.signals[1];
    assert_eq!(
        (d.adc_gain, d.gain(), d.baseline, d.units.as_str()),
        (0.0, 200.0, 0, "mV")
    );
    assert_eq!(
        (d.adc_resolution, d.checksum, d.description.as_str()),
        (16, None, "")
    );
}

#[test]
fn multi_segment_header() {
    let text = "big/3 2 125 300\nbig_layout 0\nbig_0001 200\n~ 100\n";
    let h = Header::parse(text, "big.hea").unwrap();
    assert!(h.is_multi_segment());
    assert_eq!(h.n_segments, Some(3));
    let segments: Vec<(&str, usize)> = h
        .segments
        .iter()
        .map(|s| (s.name.as_str(), s.n_samples))
        .collect();
    assert_eq!(segments, [("big_layout", 0), ("big_0001", 200), ("~", 100)]);
}

fn word(code: u16, value: u16) -> [u8; 2] {
    ((code << 10) | value).to_le_bytes()
}

#[test]
fn annotations_with_every_pseudo_code() {
    let mut bytes = Vec::new();
    bytes.extend(word(1, 10)); // N at 10
    bytes.extend(word(59, 0)); // SKIP 70000 (high word first, then low word)
    bytes.extend(1u16.to_le_bytes());
    bytes.extend(4464u16.to_le_bytes());
    bytes.extend(word(5, 0)); // V at 10 + 70000
    bytes.extend(word(62, 1)); // CHN 1
    bytes.extend(word(60, 3)); // NUM 3
    bytes.extend(word(61, 2)); // SUB 2
    bytes.extend(word(28, 5)); // + at 70015
    bytes.extend(word(63, 5)); // AUX "(AFIB" padded to 6 bytes
    bytes.extend(b"(AFIB\0");
    bytes.extend(word(8, 1)); // A at 70016, chan and num carry over, subtype resets
    bytes.extend(word(0, 0)); // end
    bytes.extend(word(1, 1)); // after the end marker: ignored
    let a = parse_annotations(&bytes, "t.atr").unwrap();
    let got: Vec<(i64, &str, u8, i8, i16, &str)> = a
        .iter()
        .map(|a| (a.sample, a.symbol, a.chan, a.num, a.subtype, a.aux.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (10, "N", 0, 0, 0, ""),
            (70010, "V", 1, 3, 2, ""),
            (70015, "+", 1, 3, 0, "(AFIB"),
            (70016, "A", 1, 3, 0, ""),
        ]
    );
    assert_eq!(a[1].code, 5);
}

/// A file that ends without the end marker ends at its last whole word: a lone byte after it is
/// no annotation and no error.
#[test]
fn annotations_end_at_the_last_whole_word_without_an_end_marker() {
    let mut bytes = Vec::new();
    bytes.extend(word(1, 10)); // N at 10
    bytes.extend(word(5, 3)); // V at 13
    bytes.push(0x07);
    let a = parse_annotations(&bytes, "t.atr").unwrap();
    let got: Vec<(i64, &str)> = a.iter().map(|a| (a.sample, a.symbol)).collect();
    assert_eq!(got, [(10, "N"), (13, "V")]);
}

#[test]
fn voltage_units_convert_to_millivolts_and_others_do_not() {
    let spec = |units: &str| {
        let text = format!("r 1 100\nr.dat 16 200/{units} 16 0 0 0 0 II\n");
        Header::parse(&text, "r.hea").unwrap().signals.remove(0)
    };
    for (units, factor) in [
        ("uV", 1e-3),
        ("\u{b5}V", 1e-3),
        ("\u{3bc}V", 1e-3),
        ("mV", 1.0),
        ("mv", 1.0),
        ("V", 1e3),
    ] {
        assert_eq!(spec(units).millivolts_per_unit(), Some(factor), "{units}");
    }
    for units in ["mmHg", "NU", "%", "bpm"] {
        assert_eq!(spec(units).millivolts_per_unit(), None, "{units}");
    }
    let default = Header::parse("r 1 100\nr.dat 16 200\n", "r.hea").unwrap();
    assert_eq!(default.signals[0].millivolts_per_unit(), Some(1.0));
}

#[test]
fn annotation_subtype_is_a_signed_byte() {
    // wfdb.wrann writes subtype -2 as the 10-bit value 0x0FE; rdann reads it back as -2.
    let mut bytes = Vec::new();
    bytes.extend(word(8, 5)); // A at 5
    bytes.extend(word(61, 0x0FE)); // its subtype: -2
    bytes.extend(word(1, 1)); // N at 6
    bytes.extend(word(61, 0x07F)); // its subtype: 127
    bytes.extend(word(0, 0));
    let a = parse_annotations(&bytes, "t.atr").unwrap();
    let subtypes: Vec<i16> = a.iter().map(|a| a.subtype).collect();
    assert_eq!(subtypes, [-2, 127]);
}
