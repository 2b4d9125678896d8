//! Real records with damaged headers and signal files: every read either succeeds or returns an
//! error naming a file of the record; none panics, aborts or allocates what the damage claims.
//! The damage is drawn from a fixed seed: characters of the header replaced, deleted or
//! duplicated, the header or a signal file cut short, bytes of a signal file's start overwritten
//! (a MATLAB file's matrix header lives there); the same for an annotation file's bytes and the
//! label tables (PTB-XL's two CSVs, CinC 2017's REFERENCE.csv, `# Dx:` header comments).

use ecgfm_test_support::{shared_data, Draws};
use ecgfm_wfdb::labels::{parse_header_comments, read_cinc2017_reference_from, PtbXlDatabase};
use ecgfm_wfdb::{parse_annotations, read_record_with, MemorySource, ReadOptions, WfdbError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Characters headers and label tables are made of, and a few they should never hold.
const HEADER_BYTES: &[u8] = b"0123456789 \n\t-+.:/()xe#_abcdXYZ\0\xff";

/// One damaged copy of a text file (a header, a label table).
fn damage_text(text: &[u8], draws: &mut Draws) -> Vec<u8> {
    let mut out = text.to_vec();
    if out.is_empty() {
        return out;
    }
    match draws.below(4) {
        0 => {
            let at = draws.below(out.len());
            out[at] = HEADER_BYTES[draws.below(HEADER_BYTES.len())];
        }
        1 => {
            let at = draws.below(out.len());
            out.remove(at);
        }
        2 => {
            let at = draws.below(out.len());
            let digits = b"9".repeat(1 + draws.below(20));
            out.splice(at..at, digits);
        }
        _ => out.truncate(draws.below(out.len())),
    }
    out
}

/// One damaged copy of a signal file: cut short, or bytes of its first 128 overwritten.
fn damage_signal(bytes: &[u8], draws: &mut Draws) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if draws.below(2) == 0 {
        out.truncate(draws.below(out.len()));
    } else {
        for _ in 0..1 + draws.below(4) {
            let at = draws.below(out.len().min(128));
            if let Some(b) = out.get_mut(at) {
                *b = draws.next_u64() as u8;
            }
        }
    }
    out
}

/// The files of record `stem` in `dir` (its header and every file named `stem.*`).
fn record_files(dir: &Path, stem: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{stem}.")))
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn damaged_real_records_give_errors_naming_their_files_never_panics() {
    let Some(data) = shared_data("") else {
        return;
    };
    let records = [
        ("wfdb-formats", "100"),
        ("wfdb-formats", "03700181"),
        ("wfdb-formats", "3000003_0003"),
        ("wfdb-formats", "a103l"),
        ("wfdb-formats", "binformats"),
        ("wfdb-formats", "p10143"),
        ("wfdb-formats", "test01_00s"),
        ("wfdb-formats", "v102s"),
        ("ptbxl-500/records500/00000", "00001_hr"),
        ("cinc2017", "A00001"),
        ("cinc2021-sample", "E07500"),
        ("cinc2021-sample", "HR06000"),
        ("cinc2021-sample", "JS20000"),
    ];
    let mut draws = Draws::new(2026);
    let (mut read, mut refused) = (0, 0);
    for (folder, stem) in records {
        let files = record_files(&data.join(folder), stem);
        let header = format!("{stem}.hea");
        let mut source = MemorySource::new();
        for (name, bytes) in &files {
            source.insert(name.clone(), bytes.clone());
        }
        // CinC 2017 headers carry checksum 0 everywhere (never computed).
        let options = ReadOptions {
            ignore_checksums: folder == "cinc2017",
            ..Default::default()
        };
        if let Err(e) = read_record_with(&source, stem, &options) {
            panic!("{folder}/{stem} must read undamaged: {e}");
        }
        for trial in 0..300 {
            let (name, bytes) = if trial % 3 == 2 && files.len() > 1 {
                let (name, bytes) = &files[1 + draws.below(files.len() - 1)];
                (name.clone(), damage_signal(bytes, &mut draws))
            } else {
                let original = &files.iter().find(|(n, _)| *n == header).unwrap().1;
                (header.clone(), damage_text(original, &mut draws))
            };
            source.insert(name.clone(), bytes.clone());
            let result = catch_unwind(AssertUnwindSafe(|| {
                read_record_with(&source, stem, &options)
            }));
            match result {
                Err(_) => panic!(
                    "{folder}/{stem}: reading panicked with {name} damaged to {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(400)])
                ),
                Ok(Ok(_)) => read += 1,
                Ok(Err(e)) => {
                    // A damaged file name in the header: the error names the file it sought.
                    let sought = matches!(e, WfdbError::NotFound { .. });
                    let message = e.to_string();
                    assert!(
                        sought || files.iter().any(|(n, _)| message.contains(n.as_str())),
                        "{folder}/{stem}: the error names no file of the record: {message}"
                    );
                    refused += 1;
                }
            }
            let original = &files.iter().find(|(n, _)| *n == name).unwrap().1;
            source.insert(name, original.clone());
        }
    }
    println!("{read} damaged copies still read, {refused} refused with an error naming the file");
    assert!(refused > read, "most damage must be caught");
}

#[test]
fn damaged_annotation_files_give_errors_never_panics() {
    let Some(dir) = shared_data("wfdb-formats") else {
        return;
    };
    let bytes = std::fs::read(dir.join("100.atr")).unwrap();
    assert!(parse_annotations(&bytes, "100.atr").is_ok());
    let mut draws = Draws::new(17);
    let (mut read, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut damaged = bytes.clone();
        if draws.below(3) == 0 {
            damaged.truncate(draws.below(bytes.len()));
        } else {
            for _ in 0..1 + draws.below(8) {
                let at = draws.below(damaged.len());
                damaged[at] = draws.next_u64() as u8;
            }
        }
        match catch_unwind(|| parse_annotations(&damaged, "100.atr")) {
            Err(_) => panic!("parsing panicked on {damaged:?}"),
            Ok(Ok(_)) => read += 1,
            Ok(Err(e)) => {
                assert!(e.to_string().contains("100.atr"), "{e}");
                refused += 1;
            }
        }
    }
    println!("{read} damaged annotation files still parsed, {refused} refused");
    assert!(refused > 0);
}

#[test]
fn damaged_label_tables_give_errors_naming_them_never_panics() {
    let Some(data) = shared_data("") else {
        return;
    };
    let first_lines = |path: &str, n: usize| {
        let text = std::fs::read_to_string(data.join(path)).unwrap();
        text.lines()
            .take(n)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    };
    let database = first_lines("ptbxl-500/ptbxl_database.csv", 40);
    let statements = std::fs::read(data.join("ptbxl-500/scp_statements.csv")).unwrap();
    let reference = first_lines("cinc2017/REFERENCE.csv", 200);
    let comments = std::fs::read(data.join("cinc2021-sample/E07500.hea")).unwrap();
    let parse = |which: usize, db: &[u8], st: &[u8], rf: &[u8], cm: &[u8]| match which {
        0 => PtbXlDatabase::from_bytes(db, "db.csv", st, "st.csv").map(|_| ()),
        1 => read_cinc2017_reference_from(rf, "REFERENCE.csv").map(|_| ()),
        _ => {
            let text = String::from_utf8_lossy(cm);
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            parse_header_comments(&lines);
            Ok(())
        }
    };
    assert!(parse(0, &database, &statements, &reference, &comments).is_ok());
    assert!(parse(1, &database, &statements, &reference, &comments).is_ok());
    let mut draws = Draws::new(5);
    let mut refused = 0;
    for trial in 0..1500 {
        let which = trial % 4;
        let (mut db, mut st, mut rf, mut cm) = (
            database.clone(),
            statements.clone(),
            reference.clone(),
            comments.clone(),
        );
        let (target, name) = match which {
            0 => (&mut db, "db.csv"),
            1 => (&mut st, "st.csv"),
            2 => (&mut rf, "REFERENCE.csv"),
            _ => (&mut cm, "E07500.hea"),
        };
        for _ in 0..1 + draws.below(3) {
            *target = damage_text(target, &mut draws);
        }
        let damaged = target.clone();
        let parser = [0, 0, 1, 2][which];
        match catch_unwind(AssertUnwindSafe(|| parse(parser, &db, &st, &rf, &cm))) {
            Err(_) => panic!(
                "parsing panicked with {name} damaged to {:?}",
                String::from_utf8_lossy(&damaged)
            ),
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                assert!(e.to_string().contains(name), "{e}");
                refused += 1;
            }
        }
    }
    println!("{refused} of 1500 damaged label tables refused");
    assert!(refused > 0);
}
