//! The report's table of every size against the smallest at one budget, for groups of three or
//! more sizes (the verdict compares only the largest with the smallest): each size's seeds,
//! validation loss and downstream AUROCs, and its difference from the smallest with the same
//! intervals as the verdict (loss: Welch t over seeds; AUROC: paired over the test patients (or
//! records) and, where both sizes have two or more seeds, over seeds and patients; none where the
//! two were scored on different test sets).

use crate::analysis::{compare, AurocDiff, Comparison, Group, SizeResult, TaskAuroc};
use crate::report::human;
use std::fmt::Write as _;

/// One AUROC column: a task under a protocol.
struct Column<'a> {
    task: &'a str,
    protocol: &'static str,
    result: fn(&'a SizeResult, &str) -> Option<&'a TaskAuroc>,
    diffs: fn(&Comparison) -> &[AurocDiff],
}

/// Writes the table of `g` (nothing for fewer than three sizes).
pub(crate) fn against_smallest(md: &mut String, g: &Group, tasks: &[String]) {
    if g.sizes.len() < 3 {
        return;
    }
    let smallest = &g.sizes[0];
    let columns: Vec<Column> = tasks
        .iter()
        .flat_map(|task| {
            [
                Column {
                    task,
                    protocol: "probe",
                    result: SizeResult::probe,
                    diffs: |c| &c.probe,
                },
                Column {
                    task,
                    protocol: "fine-tuned",
                    result: SizeResult::finetune,
                    diffs: |c| &c.finetune,
                },
            ]
        })
        .filter(|col| (col.result)(smallest, col.task).is_some())
        .collect();
    let _ = writeln!(
        md,
        "Each size against {} (in brackets the difference and its 95% interval: loss over \
         seeds (Welch t); AUROC paired over the test patients (records, in result files without \
         patients), then over seeds and patients where both sizes have two or more seeds):\n",
        smallest.size
    );
    let mut header = String::from("| size | N | seeds | val loss |");
    for col in &columns {
        let _ = write!(header, " {} {} AUROC |", col.task, col.protocol);
    }
    let _ = writeln!(md, "{header}");
    let _ = writeln!(md, "|{}", "---|".repeat(4 + columns.len()));
    for (i, size) in g.sizes.iter().enumerate() {
        let c = (i > 0).then(|| compare(g, 0, i, tasks));
        let mut row = format!(
            "| {} | {} | {} | {:.4}{} |",
            size.size,
            human(size.n as f64),
            size.losses.len(),
            size.mean_loss(),
            c.as_ref().map_or(String::new(), loss_difference)
        );
        for col in &columns {
            let value =
                (col.result)(size, col.task).map_or("-".into(), |t| format!("{:.3}", t.mean));
            let diff = c
                .as_ref()
                .and_then(|c| (col.diffs)(c).iter().find(|d| d.task == col.task))
                .map_or(String::new(), auroc_difference);
            let _ = write!(row, " {value}{diff} |");
        }
        let _ = writeln!(md, "{row}");
    }
    md.push('\n');
}

/// ` (+0.0043 [-0.0010, +0.0090])`, or the difference alone without an interval; no difference
/// where the two were measured on different validation sets.
fn loss_difference(c: &Comparison) -> String {
    if c.other_validation_sets {
        return " (different validation sets: not comparable)".into();
    }
    match &c.loss_ci {
        Some(ci) => format!(" ({:+.4} [{:+.4}, {:+.4}])", c.loss_diff, ci.low, ci.high),
        None => format!(" ({:+.4})", c.loss_diff),
    }
}

/// ` (+0.020 [+0.004, +0.036]; seeds [-0.010, +0.045])`: the difference, its paired interval
/// and the one over seeds where there are both; no difference where the two were scored on
/// different test sets.
fn auroc_difference(d: &AurocDiff) -> String {
    if d.other_test_sets() {
        return " (different test sets: not comparable)".into();
    }
    let interval =
        |ci: &crate::fit::bootstrap::Interval| format!("[{:+.3}, {:+.3}]", ci.low, ci.high);
    let mut out = format!(" ({:+.3}", d.diff);
    if let Some(ci) = &d.paired {
        let _ = write!(out, " {}", interval(ci));
    }
    if let Some(ci) = &d.over_seeds {
        let _ = write!(out, "; seeds {}", interval(ci));
    }
    out.push(')');
    out
}
