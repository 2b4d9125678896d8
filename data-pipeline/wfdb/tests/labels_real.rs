//! Label readers on the real CSVs and headers of the shared data, compared entry by entry with
//! the pandas / `wfdb.rdheader` computation of `tests/wfdb_oracle.py`, plus small hand cases.

mod oracle;

use ecgfm_test_support::shared_data;
use ecgfm_wfdb::labels::{
    parse_header_comments, read_cinc2017_reference, read_cinc2017_reference_from, PtbXlDatabase,
    Sex,
};
use ecgfm_wfdb::read_record;

#[test]
fn ptbxl_labels_match_the_benchmark_code() {
    let Some(data) = shared_data("") else {
        return;
    };
    let dir = data.join("ptbxl-500");
    let db = PtbXlDatabase::load(
        &dir.join("ptbxl_database.csv"),
        &dir.join("scp_statements.csv"),
    )
    .unwrap();
    let args = ["ptbxl", "ptbxl_database.csv", "scp_statements.csv"].map(String::from);
    let Some(expected) = oracle::run_oracle(&dir, &args) else {
        return;
    };
    assert_eq!(db.entries.len(), expected.len());
    assert_eq!(db.entries.len(), 500);
    for row in &expected {
        let entry = db.get(row[0].parse().unwrap()).expect("ecg_id present");
        let sex = match entry.sex {
            Some(Sex::Male) => "0",
            Some(Sex::Female) => "1",
            None => "",
        };
        let age = entry.age.map_or(String::new(), |a| format!("{a:?}"));
        let codes: Vec<&str> = entry
            .scp_likelihoods
            .iter()
            .map(|(c, _)| c.as_str())
            .collect();
        let classes: Vec<&str> = entry
            .superclasses
            .iter()
            .map(|c| c.strip_prefix("ptbxl_superclass:").unwrap())
            .collect();
        let got = [
            entry.ecg_id.to_string(),
            entry.patient_id.unwrap().to_string(),
            entry.strat_fold.to_string(),
            sex.to_string(),
            age,
            codes.join(";"),
            classes.join(";"),
            entry.filename_hr.clone(),
        ];
        assert_eq!(got.as_slice(), row.as_slice());
        let labels: Vec<String> = codes.iter().map(|c| format!("scp:{c}")).collect();
        assert_eq!(entry.scp_labels, labels);
    }
    let first = db.get(1).unwrap();
    assert_eq!(first.scp_likelihoods[0], ("NORM".to_string(), 100.0));
    assert_eq!(first.filename_lr, "records100/00000/00001_lr");
}

#[test]
fn cinc2017_reference_counts_match_pandas() {
    let Some(data) = shared_data("") else {
        return;
    };
    let dir = data.join("cinc2017");
    let labels = read_cinc2017_reference(&dir.join("REFERENCE.csv")).unwrap();
    let Some(expected) = oracle::run_oracle(&dir, &["cinc2017".into(), "REFERENCE.csv".into()])
    else {
        return;
    };
    let total: usize = expected
        .iter()
        .map(|r| r[1].parse::<usize>().unwrap())
        .sum();
    assert_eq!(labels.len(), total);
    for row in &expected {
        let want = format!("cinc2017:{}", row[0]);
        let count = labels.iter().filter(|l| l.label == want).count();
        assert_eq!(count.to_string(), row[1], "{want}");
    }
    assert_eq!(labels[0].record, "A00001");
}

#[test]
fn cinc2021_header_labels_match_rdheader() {
    let Some(data) = shared_data("") else {
        return;
    };
    let dir = data.join("cinc2021-sample");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".hea")
                .map(String::from)
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 50);
    let mut args = vec!["dx".to_string()];
    args.extend(names.iter().cloned());
    let Some(expected) = oracle::run_oracle(&dir, &args) else {
        return;
    };
    for (name, row) in names.iter().zip(&expected) {
        let record = read_record(&dir.join(name)).unwrap();
        let labels = ecgfm_wfdb::labels::header_labels(&record);
        let dx: Vec<String> = row[1].split(';').map(|c| format!("snomed:{c}")).collect();
        assert_eq!(labels.dx, dx, "{name}");
        assert_eq!(
            labels.age.map_or(String::new(), |a| format!("{a:?}")),
            row[2],
            "{name}"
        );
        let sex = match labels.sex {
            Some(Sex::Male) => "M",
            Some(Sex::Female) => "F",
            None => "",
        };
        assert_eq!(sex, row[3], "{name}");
    }
}

#[test]
fn header_comment_edge_cases() {
    let comments: Vec<String> = ["Age: NaN", "Sex: Unknown", "Dx: 1,2", "Rx: Unknown"]
        .map(String::from)
        .to_vec();
    let labels = parse_header_comments(&comments);
    assert_eq!((labels.age, labels.sex), (None, None));
    assert_eq!(labels.dx, ["snomed:1", "snomed:2"]);
    let labels = parse_header_comments(&["age: 74".into(), "SEX: f".into()]);
    assert_eq!((labels.age, labels.sex), (Some(74.0), Some(Sex::Female)));
    assert!(labels.dx.is_empty());
    assert!(labels.malformed.is_empty());
    // An empty code between commas is malformed (it was read as `snomed:abc`, `snomed:123`).
    let labels = parse_header_comments(&[" Dx: abc,,123".into()]);
    assert_eq!(
        labels.malformed,
        ["`# Dx: abc,,123` has an empty code between its commas"]
    );
}

/// `# Sex:` is read in either spelling, word or letter, in any case.
#[test]
fn sex_is_read_as_a_word_or_its_letter() {
    for (value, sex) in [
        ("Male", Sex::Male),
        ("M", Sex::Male),
        ("m", Sex::Male),
        ("FEMALE", Sex::Female),
        ("F", Sex::Female),
    ] {
        let labels = parse_header_comments(&[format!("Sex: {value}")]);
        assert_eq!(labels.sex, Some(sex), "{value}");
    }
}

/// A `# Dx:` line with no code is a record without a diagnosis, not a malformed line (only an
/// empty code between commas is).
#[test]
fn an_empty_dx_line_is_no_diagnosis_and_not_malformed() {
    for line in ["Dx:", "Dx:   "] {
        let labels = parse_header_comments(&[line.into()]);
        assert!(labels.dx.is_empty(), "{line}: {:?}", labels.dx);
        assert!(
            labels.malformed.is_empty(),
            "{line}: {:?}",
            labels.malformed
        );
    }
}

/// A negative `ecg_id` or `strat_fold` is refused with its row, not read as 0 (a saturating
/// cast of the number).
#[test]
fn ptbxl_rejects_negative_whole_numbers() {
    let statements = b",diagnostic,diagnostic_class\nNORM,1.0,NORM\n";
    let header = "ecg_id,patient_id,age,sex,strat_fold,filename_lr,filename_hr,scp_codes";
    for (row, said) in [
        ("-5,1,50,0,1,a_lr,a_hr,{'NORM': 100.0}", "bad ecg_id `-5`"),
        ("5,1,50,0,-1,a_lr,a_hr,{'NORM': 100.0}", "bad strat_fold"),
    ] {
        let database = format!("{header}\n{row}\n");
        let err = PtbXlDatabase::from_bytes(database.as_bytes(), "db.csv", statements, "st.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("db.csv") && err.contains(said), "{err}");
    }
    let database = format!("{header}\n5,-1,50,0,1,a_lr,a_hr,{{'NORM': 100.0}}\n");
    let db =
        PtbXlDatabase::from_bytes(database.as_bytes(), "db.csv", statements, "st.csv").unwrap();
    assert_eq!(db.get(5).unwrap().patient_id, None);
}

#[test]
fn cinc2017_reference_rejects_unknown_labels() {
    let err = read_cinc2017_reference_from(b"A00001,N\nA00002,X\n", "REF.csv").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("REF.csv") && text.contains("row 2"), "{text}");
}

/// Only the first row may be the `record,label` header: one further down is a row whose label
/// `label` is no CinC 2017 label.
#[test]
fn cinc2017_reference_takes_only_the_first_row_as_its_header() {
    let labels = read_cinc2017_reference_from(b"record,label\nA00001,N\n", "REF.csv").unwrap();
    assert_eq!(labels.len(), 1);
    let err = read_cinc2017_reference_from(b"A00001,N\nrecord,label\n", "REF.csv").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("row 2") && text.contains("label `label`"),
        "{text}"
    );
}

/// A record labelled twice with two labels is refused, naming both rows (the last row's label
/// was taken until 2026-12-06); the same row twice is one label.
#[test]
fn cinc2017_reference_rejects_a_record_labelled_twice_otherwise() {
    let reference = b"A00001,N\nA00004,A\nA00002,O\nA00004,N\n";
    let err = read_cinc2017_reference_from(reference, "REF.csv").unwrap_err();
    let text = err.to_string();
    let said = "A00004 is labelled N here and A at row 2: one label a record";
    assert!(
        text.contains("REF.csv") && text.contains("row 4") && text.contains(said),
        "{text}"
    );
    let labels = read_cinc2017_reference_from(b"A00001,N\nA00001,N\n", "REF.csv").unwrap();
    assert_eq!(labels.len(), 1);
}
