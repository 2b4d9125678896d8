//! Labels carried by header comments (PhysioNet/CinC 2020-2021 style):
//! `# Dx: 164889003,59118001`, `# Age: 74`, `# Sex: Male`.

use super::Sex;
use crate::record::Record;

/// Labels found in a header's comments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderLabels {
    /// Diagnoses as `snomed:<code>`, in header order.
    pub dx: Vec<String>,
    /// Age in years; `None` when absent, `NaN` or unknown.
    pub age: Option<f64>,
    /// Sex; `None` when absent or unknown.
    pub sex: Option<Sex>,
    /// Malformed label lines, each saying what is wrong (`# Dx: abc,,123` with an empty code
    /// between commas): the record's labels are not known for sure.
    pub malformed: Vec<String>,
}

/// Labels of a record's header comments.
pub fn header_labels(record: &Record) -> HeaderLabels {
    parse_header_comments(&record.comments)
}

/// Labels of comment lines (without their `#`); keys are case-insensitive.
pub fn parse_header_comments(comments: &[String]) -> HeaderLabels {
    let mut labels = HeaderLabels::default();
    for comment in comments {
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "dx" => {
                let codes: Vec<&str> = value.split(',').map(str::trim).collect();
                if !value.is_empty() && codes.iter().any(|c| c.is_empty()) {
                    labels.malformed.push(format!(
                        "`# Dx: {value}` has an empty code between its commas"
                    ));
                }
                labels.dx.extend(
                    codes
                        .into_iter()
                        .filter(|c| !c.is_empty())
                        .map(|c| format!("snomed:{c}")),
                );
            }
            "age" => labels.age = value.parse::<f64>().ok().filter(|a| a.is_finite()),
            "sex" => labels.sex = parse_sex(value),
            _ => {}
        }
    }
    labels
}

fn parse_sex(value: &str) -> Option<Sex> {
    match value.to_ascii_lowercase().as_str() {
        "male" | "m" => Some(Sex::Male),
        "female" | "f" => Some(Sex::Female),
        _ => None,
    }
}
