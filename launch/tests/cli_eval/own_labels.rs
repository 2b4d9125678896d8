//! A team's own labels: `data ingest --label-csv` with `hosp:` codes, then `ecgfm eval --labels
//! hosp` (a vocabulary ecgfm does not know, its classes from the data); and codes of a known
//! vocabulary that are none of its classes, named in a warning.

use crate::common::{run_ok, temp_dir};
use crate::{eval_args, fixture, read_json};

#[test]
fn a_vocabulary_of_the_dataset_s_own_labels_is_evaluated() {
    let Some(source) = ecgfm_test_support::shared_data("cinc2017") else {
        return;
    };
    let dir = temp_dir("own-labels");
    let (_, run) = fixture();
    // 90 records: a third `hosp:af`, a third `hosp:other`, a third a superclass PTB-XL lacks.
    let mut csv = String::from("record,labels\n");
    for i in 1..=90 {
        let label = ["hosp:af", "hosp:other", "ptbxl_superclass:AFIB"][i % 3];
        csv.push_str(&format!("A{i:05},{label}\n"));
    }
    let (labels, records, data) = (dir.join("l.csv"), dir.join("r.txt"), dir.join("data"));
    std::fs::write(&labels, &csv).unwrap();
    let names: Vec<String> = (1..=90).map(|i| format!("A{i:05}")).collect();
    std::fs::write(&records, names.join("\n")).unwrap();
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
    run_ok(&[
        "data",
        "ingest",
        &p(&source),
        "--out",
        &p(&data),
        "--label-csv",
        &p(&labels),
        "--records",
        &p(&records),
        "--rate",
        "300",
    ]);
    let out = dir.join("hosp.json");
    let (data_s, run_s, out_s) = (p(&data), p(run), p(&out));
    let mut args = eval_args(&data_s, &run_s, &out_s, "probe");
    let at = args.iter().position(|a| *a == "synth").unwrap();
    args[at] = "hosp";
    let fractions = args.iter().position(|a| *a == "--fractions").unwrap();
    args[fractions + 1] = "1";
    args.extend(["--min-positives", "5"]);
    let said = run_ok(&args);
    assert!(said.contains("hosp: "), "{said}");
    let result = read_json(&out);
    assert_eq!(result["classes"], serde_json::json!(["af", "other"]));
    let auroc = result["results"][0]["macro_auroc"].as_f64().unwrap();
    assert!(auroc > 0.0 && auroc < 1.0, "{result}");
    // The same records under a known vocabulary with a code that is none of its classes: the
    // windows are unlabelled, and the refusal (no window is left) names the code.
    let out = dir.join("ptbxl.json");
    let out_s = p(&out);
    let mut args = eval_args(&data_s, &run_s, &out_s, "probe");
    args[at] = "ptbxl_superclass";
    let err = crate::common::run_err(&args);
    assert!(
        err.contains("labels `ptbxl_superclass:AFIB (") && err.contains("are none of its classes"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
