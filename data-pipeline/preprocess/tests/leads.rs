//! Lead-name mapping table: many spellings to the standard order, presence mask, dropped leads.

use ecgfm_preprocess::{is_negated, map_leads, standard_lead_index, DropReason, STANDARD_LEADS};

#[test]
fn spellings_map_to_standard_slots() {
    let table: &[(&str, usize)] = &[
        ("I", 0),
        ("i", 0),
        ("lead I", 0),
        ("Lead_I", 0),
        ("DI", 0),
        ("D1", 0),
        ("MLI", 0),
        ("II", 1),
        ("ii", 1),
        ("MLII", 1),
        ("ML II", 1),
        ("ECG II", 1),
        ("D2", 1),
        ("III", 2),
        ("MLIII", 2),
        ("DIII", 2),
        ("aVR", 3),
        ("AVR", 3),
        ("avr", 3),
        ("lead aVR", 3),
        ("aVL", 4),
        ("AVL", 4),
        ("aVF", 5),
        ("avf", 5),
        ("V1", 6),
        ("v1", 6),
        ("C1", 6),
        ("V2", 7),
        ("V3", 8),
        ("V4", 9),
        ("V5", 10),
        ("v5", 10),
        ("V6", 11),
        ("lead V6", 11),
    ];
    for &(name, slot) in table {
        assert_eq!(standard_lead_index(name), Some(slot), "{name}");
    }
    for (slot, name) in STANDARD_LEADS.iter().enumerate() {
        assert_eq!(standard_lead_index(name), Some(slot));
    }
}

/// `-aVR` (Cabrera exports) is aVR negated: its slot, flagged; a minus elsewhere is only a
/// separator (`ECG-II`, `V4-R` stays unknown).
#[test]
fn a_leading_minus_names_the_negated_lead() {
    for name in ["-aVR", "\u{2212}aVR", " -avr"] {
        assert_eq!(standard_lead_index(name), Some(3), "{name}");
        assert!(is_negated(name), "{name}");
    }
    for name in ["aVR", "ECG-II", "lead-I", "V4-R"] {
        assert!(!is_negated(name), "{name}");
    }
    assert_eq!(standard_lead_index("V4-R"), None);
    let mapping = map_leads(&["I", "-aVR", "aVR"]);
    assert_eq!(mapping.source_of[3], Some(1));
    assert_eq!(mapping.negated, {
        let mut n = [false; 12];
        n[3] = true;
        n
    });
    assert_eq!(mapping.dropped[0].reason, DropReason::Duplicate);
}

#[test]
fn non_ecg_and_unknown_names_do_not_map() {
    for name in [
        "vx", "vy", "vz", "PLETH", "RESP", "ABP", "ECG", "ECG1", "V", "V7", "lead", "", "1", "IV",
    ] {
        assert_eq!(standard_lead_index(name), None, "{name}");
    }
}

#[test]
fn ptb_diagnostic_frank_leads_are_reported_and_dropped() {
    let names = [
        "i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz",
    ];
    let m = map_leads(&names);
    assert_eq!(m.mask(), [true; 12]);
    assert_eq!(m.source_of[11], Some(11));
    let dropped: Vec<(&str, usize)> = m
        .dropped
        .iter()
        .map(|d| (d.name.as_str(), d.source_index))
        .collect();
    assert_eq!(dropped, vec![("vx", 12), ("vy", 13), ("vz", 14)]);
    assert!(m.dropped.iter().all(|d| d.reason == DropReason::Unknown));
}

#[test]
fn mit_bih_two_leads() {
    let m = map_leads(&["MLII", "V5"]);
    let mut expected = [None; 12];
    expected[1] = Some(0);
    expected[10] = Some(1);
    assert_eq!(m.source_of, expected);
    assert!(m.dropped.is_empty());
}

#[test]
fn single_unknown_lead_is_lead_one() {
    let m = map_leads(&["ECG"]);
    assert_eq!(m.source_of[0], Some(0));
    assert_eq!(m.mask().iter().filter(|&&p| p).count(), 1);
    assert!(m.dropped.is_empty());
    let named = map_leads(&["V2"]);
    assert_eq!(named.source_of[7], Some(0));
    assert_eq!(named.source_of[0], None);
}

#[test]
fn a_single_signal_that_is_not_an_ecg_is_not_lead_one() {
    for generic in ["ECG", "ecg 1", "EKG", "ECG2", ""] {
        assert_eq!(map_leads(&[generic]).source_of[0], Some(0), "{generic:?}");
    }
    for other in ["PLETH", "ABP", "RESP", "SpO2", "ART", "UC", "FECG", "1"] {
        let m = map_leads(&[other]);
        assert_eq!(m.source_of, [None; 12], "{other}");
        assert_eq!(m.dropped[0].reason, DropReason::Unknown);
    }
}

#[test]
fn unknown_lead_among_several_is_dropped_and_duplicates_keep_the_first() {
    let m = map_leads(&["I", "ECG", "lead I", "PLETH"]);
    assert_eq!(m.source_of[0], Some(0));
    let reasons: Vec<(&str, DropReason)> = m
        .dropped
        .iter()
        .map(|d| (d.name.as_str(), d.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("ECG", DropReason::Unknown),
            ("lead I", DropReason::Duplicate),
            ("PLETH", DropReason::Unknown)
        ]
    );
}
