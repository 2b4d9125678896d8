//! Ingest of the shared `wfdb-formats` folder: records with no standard ECG lead are quarantined
//! with that reason, the others are ingested (some partially, their non-ECG signals listed),
//! with the window counts their lengths give at 250 Hz.

use crate::ingest_support;

use std::collections::BTreeMap;

use ecgfm_data::ingest::SourceFormat;
use ingest_support::{hidden, ingest_shared, read_dataset};

#[test]
fn wfdb_formats_quarantine_and_partial_records_are_exact() {
    let Some((out, _, report)) = ingest_shared("wfdb-formats") else {
        return;
    };
    assert_eq!(report.format, SourceFormat::Wfdb);
    let (manifest, rows) = read_dataset(out.path().to_str().unwrap(), &[]);
    // The manifest counts each split's rows by present leads, as the rows say.
    let mut leads_present: BTreeMap<String, BTreeMap<u8, u64>> = BTreeMap::new();
    for row in &rows {
        let present = row.lead_mask.iter().filter(|&&p| p).count() as u8;
        let split = leads_present.entry(row.split.clone()).or_default();
        *split.entry(present).or_default() += 1;
    }
    let kinds: std::collections::BTreeSet<u8> = leads_present
        .values()
        .flat_map(|m| m.keys().copied())
        .collect();
    assert!(
        kinds.len() >= 3,
        "records of several lead counts: {kinds:?}"
    );
    assert_eq!(manifest.counts.leads_present, leads_present);
    println!(
        "{}",
        serde_json::to_string_pretty(&manifest.quarantine).unwrap()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&manifest.partial).unwrap()
    );

    let quarantined: BTreeMap<&str, &str> = manifest
        .quarantine
        .iter()
        .map(|q| (q.record.as_str(), q.kind.as_str()))
        .collect();
    let no_lead = "no standard ECG lead";
    assert_eq!(
        quarantined,
        BTreeMap::from([
            ("03700181", no_lead),
            ("binformats", no_lead),
            ("p10143", no_lead),
            ("test01_00s", no_lead),
        ])
    );
    for q in &manifest.quarantine {
        assert!(
            q.reason.contains(&q.record),
            "reason names the record: {}",
            q.reason
        );
        assert!(q.uri.ends_with(&q.record), "{}", q.uri);
    }
    assert_eq!(
        manifest.counts.quarantine,
        BTreeMap::from([(no_lead.to_string(), 4)])
    );

    let mut windows: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        *windows.entry(&row.record_id).or_default() += 1;
    }
    assert_eq!(
        windows,
        BTreeMap::from([
            ("100", 181),
            ("3000003_0003", 1),
            ("a103l", 33),
            ("s0010_re", 4),
            ("v102s", 30),
        ])
    );
    assert_eq!(report.records_ingested, 5);
    assert_eq!(report.records_quarantined, 4);

    let short = rows.iter().find(|r| r.record_id == "3000003_0003").unwrap();
    assert_eq!(
        short.n_samples, 2056,
        "1028 samples at 125 Hz = 2056 at 250 Hz, padded"
    );
    let present: Vec<bool> = (0..12).map(|l| l == 1).collect();
    assert_eq!(short.lead_mask, present, "only lead II");
    assert_eq!(short.lead_names, ["II", "V"]);
    let mit = rows.iter().find(|r| r.record_id == "100").unwrap();
    let ii_v5: Vec<bool> = (0..12).map(|l| l == 1 || l == 10).collect();
    assert_eq!(mit.lead_mask, ii_v5, "MLII -> II, V5 -> V5");
    let ptb = rows.iter().find(|r| r.record_id == "s0010_re").unwrap();
    assert!(ptb.lead_mask.iter().all(|m| *m));
    assert_eq!(ptb.age, Some(81.0));
    assert_eq!(ptb.sex.as_deref(), Some("F"));
    for row in &rows {
        for (lead, sum) in row.lead_abs_sums.iter().enumerate() {
            if !row.lead_mask[lead] {
                assert_eq!(*sum, 0, "absent lead {lead} of {} is zero", row.record_id);
            }
        }
    }

    let partial: BTreeMap<&str, Vec<String>> = manifest
        .partial
        .iter()
        .map(|p| (p.record.as_str(), p.dropped_leads.clone()))
        .collect();
    let unknown = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("{n} (not a standard ECG lead)"))
            .collect()
    };
    assert_eq!(partial["3000003_0003"], unknown(&["V"]));
    assert_eq!(partial["a103l"], unknown(&["V", "PLETH"]));
    assert_eq!(
        partial["s0010_re"],
        unknown(&["vx", "vy", "vz"]),
        "s0010_re.xyz (absent) is never read"
    );
    assert_eq!(partial["v102s"], unknown(&["V", "PLETH", "RESP"]));
    assert!(!partial.contains_key("100"));
    assert_eq!(report.records_partial, 4);
    let said = report.to_string();
    assert!(
        said.contains("  quarantined     4: no standard ECG lead"),
        "{said}"
    );
    assert!(
        said.contains("  kept in part    4: without their non-ECG leads"),
        "{said}"
    );

    let summary =
        ecgfm_data::inspect::inspect(out.path().to_str().unwrap(), &[], &hidden()).unwrap();
    assert_eq!(summary.rows, rows.len() as u64);
    assert_eq!(summary.records, 5);
    assert_eq!(summary.quality_histogram.iter().sum::<u64>(), summary.rows);
    // A score under 0.5 means some check passed its threshold, which raises that check's flag.
    let below_half = rows.iter().filter(|r| r.quality_score < 0.5).count() as u64;
    let flagged = &summary.flagged_rows;
    assert!(
        below_half > 0,
        "wfdb-formats holds noisy and clipped records"
    );
    assert!(
        *flagged.iter().max().unwrap() <= below_half && below_half <= flagged.iter().sum::<u64>(),
        "{flagged:?} vs {below_half} rows scored under 0.5"
    );
    assert_eq!(summary.partial_records, 4);
    let text = summary.to_string();
    println!("{text}");
    assert!(text.contains("no standard ECG lead"), "{text}");
    assert!(text.contains("249 rows from 5 records"), "{text}");
    assert!(summary.damaged_shards.is_empty(), "{text}");

    // A shard that no longer matches its manifest entry is reported by name.
    let manifest_path = out.path().join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    json["shards"][0]["sha256"] = "0".repeat(64).into();
    std::fs::write(&manifest_path, serde_json::to_vec(&json).unwrap()).unwrap();
    let summary =
        ecgfm_data::inspect::inspect(out.path().to_str().unwrap(), &[], &hidden()).unwrap();
    let shard = json["shards"][0]["path"].as_str().unwrap();
    assert_eq!(summary.damaged_shards.len(), 1);
    assert_eq!(summary.damaged_shards[0].0, shard);
    assert!(summary.to_string().contains("DIFFER"));
}
