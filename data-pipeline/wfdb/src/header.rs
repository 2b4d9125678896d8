//! Parsing of WFDB header (`.hea`) files: the record line, signal lines, segment lines of
//! multi-segment records, and comment lines (kept in order).

use crate::error::WfdbError;
use crate::format::SignalFormat;

/// ADC gain used when the header's gain is missing or 0 (WFDB convention).
pub const DEFAULT_GAIN: f64 = 200.0;
/// Sampling frequency used when the header leaves it out (WFDB convention).
pub const DEFAULT_FS: f64 = 250.0;

/// A parsed header file.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Record name from the record line.
    pub record_name: String,
    /// Number of segments for a multi-segment record (`name/N`), `None` otherwise.
    pub n_segments: Option<usize>,
    /// Number of signals.
    pub n_signals: usize,
    /// Sampling frequency in frames per second.
    pub fs: f64,
    /// Counter frequency (`fs/counter`), if given.
    pub counter_freq: Option<f64>,
    /// Base counter value (`fs/counter(base)`), if given.
    pub base_counter: Option<f64>,
    /// Number of frames per signal, if given (a 0 in the header means "unspecified", as a
    /// missing count: the signal files' length decides and checksums are not verified).
    pub n_samples: Option<usize>,
    /// Base time as written (`HH:MM:SS[.mmm]`), if given.
    pub base_time: Option<String>,
    /// Base date as written (`DD/MM/YYYY`), if given.
    pub base_date: Option<String>,
    /// One entry per signal line (empty for a multi-segment header).
    pub signals: Vec<SignalSpec>,
    /// One entry per segment line (empty for a single-segment header).
    pub segments: Vec<SegmentSpec>,
    /// Comment lines without the leading `#`, trimmed, in file order.
    pub comments: Vec<String>,
}

/// One signal line of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    /// Signal file name relative to the header's folder (`~` for a null signal).
    pub file_name: String,
    /// Storage format code as written (see [`SignalFormat::from_code`]).
    pub format_code: u32,
    /// Samples per frame (`xN`, default 1).
    pub samples_per_frame: usize,
    /// Skew in frames (`:N`, default 0).
    pub skew: usize,
    /// Byte offset of the first sample in the file (`+N`, default 0).
    pub byte_offset: u64,
    /// ADC gain as written (0 when absent; see [`SignalSpec::gain`]).
    pub adc_gain: f64,
    /// Baseline: digital value of 0 physical units (default: the ADC zero).
    pub baseline: i32,
    /// Physical units (default `mV`).
    pub units: String,
    /// ADC resolution in bits (default depends on the format).
    pub adc_resolution: u32,
    /// ADC zero.
    pub adc_zero: i32,
    /// Initial value (default: the ADC zero); the start of format-8 differences.
    pub initial_value: i32,
    /// 16-bit checksum of all samples, if given.
    pub checksum: Option<i32>,
    /// Block size (0 when absent).
    pub block_size: u32,
    /// Description, usually the lead name (may contain spaces; empty when absent).
    pub description: String,
}

impl SignalSpec {
    /// The storage format, `None` when this reader does not decode it.
    pub fn format(&self) -> Option<SignalFormat> {
        SignalFormat::from_code(self.format_code)
    }

    /// The effective gain: [`DEFAULT_GAIN`] when the header gives 0.
    pub fn gain(&self) -> f64 {
        if self.adc_gain == 0.0 {
            DEFAULT_GAIN
        } else {
            self.adc_gain
        }
    }

    /// How many millivolts one physical unit is, for a voltage unit: `uV` (or `µV`), `mV`, `V`,
    /// in any case; `None` for any other unit (`mmHg`, `NU`, `%`...), i.e. a signal that is not
    /// an electrical potential.
    pub fn millivolts_per_unit(&self) -> Option<f64> {
        match self.units.trim().to_lowercase().as_str() {
            "uv" | "\u{b5}v" | "\u{3bc}v" => Some(1e-3),
            "mv" => Some(1.0),
            "v" => Some(1e3),
            _ => None,
        }
    }

    /// The digital code of a missing sample in this signal's format.
    pub fn invalid_code(&self) -> Option<i32> {
        self.format().and_then(SignalFormat::invalid_code)
    }

    /// Converts one digital value to physical units; the missing code gives NaN.
    pub fn to_physical(&self, digital: i32) -> f64 {
        if Some(digital) == self.invalid_code() {
            f64::NAN
        } else {
            (f64::from(digital) - f64::from(self.baseline)) / self.gain()
        }
    }
}

/// One segment line of a multi-segment header.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSpec {
    /// Segment record name, `~` for a null (gap) segment.
    pub name: String,
    /// Segment length in frames (0 for a layout segment).
    pub n_samples: usize,
    /// The header line it is declared on (from 1), for errors.
    pub line: usize,
}

impl Header {
    /// Parses header text; `file` names the header in errors.
    pub fn parse(text: &str, file: &str) -> Result<Header, WfdbError> {
        let mut comments = Vec::new();
        let mut specs: Vec<(usize, &str)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix('#') {
                comments.push(comment.trim().to_string());
            } else if !line.is_empty() {
                specs.push((index + 1, line));
            }
        }
        let bad = |line: usize, reason: String| WfdbError::BadHeader {
            file: file.to_string(),
            line,
            reason,
        };
        let Some(&(record_line_no, record_line)) = specs.first() else {
            return Err(bad(1, "no record line".into()));
        };
        let mut header = parse_record_line(record_line).map_err(|r| bad(record_line_no, r))?;
        header.comments = comments;
        let expected = header.n_segments.unwrap_or(header.n_signals);
        let body = &specs[1..];
        if body.len() < expected {
            let after = body.last().map_or(record_line_no, |&(n, _)| n);
            let kind = if header.n_segments.is_some() {
                "segment"
            } else {
                "signal"
            };
            return Err(bad(
                after + 1,
                format!("expected {expected} {kind} lines, found {}", body.len()),
            ));
        }
        if let Some(&(extra_no, _)) = body.get(expected) {
            return Err(bad(
                extra_no,
                format!("more than the {expected} declared lines"),
            ));
        }
        let mut total_frames: usize = 0;
        for &(line_no, line) in body {
            if header.n_segments.is_some() {
                let segment = parse_segment_line(line, line_no).map_err(|r| bad(line_no, r))?;
                total_frames = total_frames.checked_add(segment.n_samples).ok_or_else(|| {
                    bad(
                        line_no,
                        "the segment lengths add up to more than 2^64 frames".into(),
                    )
                })?;
                header.segments.push(segment);
            } else {
                let spec = parse_signal_line(line).map_err(|r| bad(line_no, r))?;
                if let Some(n) = header.n_samples.filter(|&n| spec.skew >= n) {
                    return Err(bad(
                        line_no,
                        format!("skew {} is not less than the {n} samples", spec.skew),
                    ));
                }
                header.signals.push(spec);
            }
        }
        // The record line's length bounds what the segments may declare (a gap segment has no
        // file that would contradict a huge length), so the two must agree when it is given.
        if let Some(n) = header.n_samples.filter(|_| header.is_multi_segment()) {
            if n != total_frames {
                return Err(bad(
                    record_line_no,
                    format!("the record has {n} frames but its segment lengths add up to {total_frames}"),
                ));
            }
        }
        Ok(header)
    }

    /// True for a multi-segment header.
    pub fn is_multi_segment(&self) -> bool {
        self.n_segments.is_some()
    }
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what} `{text}` is not a valid number"))
}

/// A finite number: Rust's parser also takes `nan`, `inf` and `infinity`, which are no numbers
/// in a WFDB header.
fn finite(text: &str, what: &str) -> Result<f64, String> {
    let value: f64 = number(text, what)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("{what} `{text}` is not a finite number"))
    }
}

fn parse_record_line(line: &str) -> Result<Header, String> {
    let mut tokens = line.split_whitespace();
    let first = tokens.next().ok_or("empty record line")?;
    let (record_name, n_segments) = match first.split_once('/') {
        Some((name, n)) => (name, Some(number::<usize>(n, "segment count")?)),
        None => (first, None),
    };
    if record_name.is_empty() {
        return Err("empty record name".into());
    }
    let n_signals = tokens.next().map_or(Ok(0), |t| number(t, "signal count"))?;
    let (mut fs, mut counter_freq, mut base_counter) = (DEFAULT_FS, None, None);
    if let Some(token) = tokens.next() {
        let (fs_text, counter) = token.split_once('/').unwrap_or((token, ""));
        fs = number(fs_text, "sampling frequency")?;
        if !counter.is_empty() {
            let (freq, base) = match counter.split_once('(') {
                Some((freq, rest)) => {
                    let base = rest.strip_suffix(')').ok_or("unclosed base counter")?;
                    (freq, Some(finite(base, "base counter")?))
                }
                None => (counter, None),
            };
            counter_freq = Some(finite(freq, "counter frequency")?);
            base_counter = base;
        }
    }
    if fs.is_nan() || fs <= 0.0 {
        return Err(format!("sampling frequency {fs} is not positive"));
    }
    // header(5): a count of 0, like a missing one, leaves the length unspecified.
    let n_samples = tokens
        .next()
        .map(|t| number(t, "sample count"))
        .transpose()?
        .filter(|&n| n != 0);
    Ok(Header {
        record_name: record_name.to_string(),
        n_segments,
        n_signals,
        fs,
        counter_freq,
        base_counter,
        n_samples,
        base_time: tokens.next().map(str::to_string),
        base_date: tokens.next().map(str::to_string),
        signals: Vec::new(),
        segments: Vec::new(),
        comments: Vec::new(),
    })
}

fn parse_segment_line(line: &str, line_no: usize) -> Result<SegmentSpec, String> {
    let mut tokens = line.split_whitespace();
    let name = tokens.next().ok_or("empty segment line")?.to_string();
    own_folder_file(&name, "segment")?;
    let length = tokens.next().ok_or("segment length missing")?;
    Ok(SegmentSpec {
        name,
        n_samples: number(length, "segment length")?,
        line: line_no,
    })
}

/// Splits off the first `n` whitespace-separated fields and returns the trimmed remainder.
fn split_fields(line: &str, n: usize) -> (Vec<&str>, &str) {
    let mut fields = Vec::with_capacity(n);
    let mut rest = line.trim_start();
    while fields.len() < n && !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    (fields, rest.trim_end())
}

/// Parses `FMT[xSPF][:SKEW][+OFFSET]`.
fn parse_format_field(field: &str) -> Result<(u32, usize, usize, u64), String> {
    let code_end = field
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(field.len());
    let code = number(&field[..code_end], "format")?;
    let (mut spf, mut skew, mut offset) = (1, 0, 0);
    let mut rest = &field[code_end..];
    while let Some(tag) = rest.chars().next() {
        let after = &rest[tag.len_utf8()..];
        let value_end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let value = &after[..value_end];
        match tag {
            'x' => spf = number(value, "samples per frame")?,
            ':' => skew = number(value, "skew")?,
            '+' => offset = number(value, "byte offset")?,
            _ => return Err(format!("unexpected `{tag}` in format field `{field}`")),
        }
        rest = &after[value_end..];
    }
    if spf == 0 {
        return Err("samples per frame is 0".into());
    }
    Ok((code, spf, skew, offset))
}

/// Parses `GAIN[(BASELINE)][/UNITS]`.
fn parse_gain_field(field: &str) -> Result<(f64, Option<i32>, Option<String>), String> {
    let (gain_part, units) = match field.split_once('/') {
        Some((g, u)) => (g, Some(u.to_string())),
        None => (field, None),
    };
    let (gain_text, baseline) = match gain_part.split_once('(') {
        Some((g, rest)) => {
            let b = rest.strip_suffix(')').ok_or("unclosed baseline")?;
            (g, Some(number(b, "baseline")?))
        }
        None => (gain_part, None),
    };
    Ok((finite(gain_text, "ADC gain")?, baseline, units))
}

/// Refuses a signal file or segment `name` that is not a file in the header's own folder: a
/// path (`../../etc/passwd`, `/data/x.dat`, `sub\\x.dat`) would read a file outside the
/// source, so a damaged or hostile header cannot make ingest read whatever it names.
fn own_folder_file(name: &str, what: &str) -> Result<(), String> {
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(format!(
            "{what} `{name}` is not a file name in the header's folder (a path is not read)"
        ));
    }
    Ok(())
}

fn parse_signal_line(line: &str) -> Result<SignalSpec, String> {
    let (fields, description) = split_fields(line, 8);
    let file_name = fields[0].to_string();
    own_folder_file(&file_name, "signal file")?;
    let format_field = fields.get(1).ok_or("format missing")?;
    let (format_code, samples_per_frame, skew, byte_offset) = parse_format_field(format_field)?;
    let (adc_gain, baseline, units) = match fields.get(2) {
        Some(field) => parse_gain_field(field)?,
        None => (0.0, None, None),
    };
    let adc_resolution = match fields.get(3) {
        Some(t) => number(t, "ADC resolution")?,
        None => 0,
    };
    let adc_resolution = if adc_resolution == 0 {
        SignalFormat::from_code(format_code).map_or(12, SignalFormat::default_resolution)
    } else {
        adc_resolution
    };
    let adc_zero = fields.get(4).map_or(Ok(0), |t| number(t, "ADC zero"))?;
    let initial_value = fields
        .get(5)
        .map_or(Ok(adc_zero), |t| number(t, "initial value"))?;
    let checksum = fields.get(6).map(|t| number(t, "checksum")).transpose()?;
    let block_size = fields.get(7).map_or(Ok(0), |t| number(t, "block size"))?;
    Ok(SignalSpec {
        file_name,
        format_code,
        samples_per_frame,
        skew,
        byte_offset,
        adc_gain,
        baseline: baseline.unwrap_or(adc_zero),
        units: units.unwrap_or_else(|| "mV".to_string()),
        adc_resolution,
        adc_zero,
        initial_value,
        checksum,
        block_size,
        description: description.to_string(),
    })
}
