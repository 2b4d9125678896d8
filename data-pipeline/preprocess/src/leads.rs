//! Lead mapping: turns a record's own lead names (`MLII`, `lead I`, `avr`, `V5`, `ECG`, `-aVR`...)
//! into slots of the standard 12-lead order, reporting (not failing on) leads that do not map.

use serde::{Deserialize, Serialize};

/// Number of standard leads.
pub const N_LEADS: usize = 12;

/// The standard lead order used everywhere in ecgfm.
pub const STANDARD_LEADS: [&str; N_LEADS] = [
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
];

/// Why a source lead was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The name is not a known 12-lead ECG lead (`vx`, `PLETH`, `RESP`...).
    Unknown,
    /// An earlier lead of the record already maps to the same standard lead.
    Duplicate,
}

/// A source lead that does not appear in the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedLead {
    /// The lead's name as written in the record.
    pub name: String,
    /// Its index among the record's leads.
    pub source_index: usize,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// Where each standard lead comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadMapping {
    /// For each standard lead, the index of the source lead that feeds it, if any.
    pub source_of: [Option<usize>; N_LEADS],
    /// For each standard lead, whether its source is named as its negation (`-aVR`, as
    /// Cabrera-sequence exports name the inverted aVR): the source is negated into the slot.
    pub negated: [bool; N_LEADS],
    /// Source leads that map to no standard lead.
    pub dropped: Vec<DroppedLead>,
}

impl LeadMapping {
    /// Presence mask in standard order.
    pub fn mask(&self) -> [bool; N_LEADS] {
        self.source_of.map(|s| s.is_some())
    }
}

/// Maps one lead name to its standard slot (0 = I ... 11 = V6), or `None` when unknown.
///
/// Case, spaces, `_`, `-`, `−` and `.` are ignored (a leading minus negates the lead: see
/// [`is_negated`]); the prefixes `lead` and `ecg` are accepted
/// (`lead I`, `ECG_II`); `ML` marks modified limb leads (`MLII`, `ML II` -> II); `D1`/`DI` .. `D3`/`DIII`
/// are the European names of I..III; `C1`..`C6` those of V1..V6.
pub fn standard_lead_index(name: &str) -> Option<usize> {
    let key = lead_key(name);
    let stripped = ["lead", "ecg"]
        .iter()
        .find_map(|p| key.strip_prefix(p).filter(|rest| !rest.is_empty()))
        .unwrap_or(&key);
    if let Some(limb) = limb_index(stripped) {
        return Some(limb);
    }
    if let Some(rest) = stripped.strip_prefix("ml") {
        return limb_index(rest);
    }
    if let Some(rest) = stripped.strip_prefix('d') {
        return limb_index(rest).or(match rest {
            "1" => Some(0),
            "2" => Some(1),
            "3" => Some(2),
            _ => None,
        });
    }
    match stripped {
        "avr" => Some(3),
        "avl" => Some(4),
        "avf" => Some(5),
        _ => chest_index(stripped),
    }
}

/// Whether `name` names the negation of a lead: it starts (after spaces) with `-` or the minus
/// sign `−` (`-aVR`, `−aVR`).
pub fn is_negated(name: &str) -> bool {
    name.trim_start().starts_with(['-', '\u{2212}'])
}

/// `name` lower-cased without spaces, `_`, `-`, `−` and `.`.
fn lead_key(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '\u{2212}' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A name that says "an ECG" without naming a lead: none at all, or `ECG` / `EKG` with at most a
/// number (`ECG`, `ecg 1`, `EKG2`). Other unknown names (`PLETH`, `ABP`, `RESP`) are other
/// signals, which must not become an ECG lead.
fn is_generic_ecg_name(name: &str) -> bool {
    let key = lead_key(name);
    let number = key.strip_prefix("ecg").or_else(|| key.strip_prefix("ekg"));
    key.is_empty() || number.is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
}

/// `i`, `ii`, `iii` -> 0, 1, 2.
fn limb_index(roman: &str) -> Option<usize> {
    match roman {
        "i" => Some(0),
        "ii" => Some(1),
        "iii" => Some(2),
        _ => None,
    }
}

/// `v1`..`v6` or `c1`..`c6` -> 6..11.
fn chest_index(core: &str) -> Option<usize> {
    let digits = core.strip_prefix('v').or_else(|| core.strip_prefix('c'))?;
    match digits {
        "1" | "2" | "3" | "4" | "5" | "6" => digits.parse::<usize>().ok().map(|d| d + 5),
        _ => None,
    }
}

/// Maps a record's lead names to standard slots.
///
/// The first lead that maps to a slot wins; later ones are dropped as duplicates. A lead named
/// as a negation (`-aVR`) feeds its slot negated. A record whose
/// single lead has a generic ECG name (`ECG` in CinC 2017 AliveCor records, `ECG1`, `EKG`, or an
/// empty one) is taken as lead I; a single `PLETH`, `ABP` or `RESP` is not.
pub fn map_leads<S: AsRef<str>>(names: &[S]) -> LeadMapping {
    let mut source_of = [None; N_LEADS];
    let mut negated = [false; N_LEADS];
    let mut dropped = Vec::new();
    for (source_index, name) in names.iter().enumerate() {
        let name = name.as_ref();
        let slot = standard_lead_index(name)
            .or((names.len() == 1 && is_generic_ecg_name(name)).then_some(0));
        let reason = match slot {
            Some(slot) if source_of[slot].is_none() => {
                source_of[slot] = Some(source_index);
                negated[slot] = is_negated(name);
                continue;
            }
            Some(_) => DropReason::Duplicate,
            None => DropReason::Unknown,
        };
        dropped.push(DroppedLead {
            name: name.to_string(),
            source_index,
            reason,
        });
    }
    LeadMapping {
        source_of,
        negated,
        dropped,
    }
}
