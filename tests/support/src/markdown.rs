//! Reading the documentation's Markdown in tests that hold it to the code: its tables, code
//! blocks and code spans, the numbers in them, and its prose with the line breaks taken out.

/// The body rows of the table whose header row starts with `header` (`"| model | GPUs |"`), each
/// a row's cells, trimmed. Panics naming `header` when there is no such table.
pub fn table(text: &str, header: &str) -> Vec<Vec<String>> {
    let (_, from_header) = text
        .split_once(header)
        .unwrap_or_else(|| panic!("no table headed {header:?}"));
    from_header
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells = l.trim().trim_matches('|').split('|');
            cells.map(|c| c.trim().to_string()).collect()
        })
        .collect()
}

/// The first fenced code block after `after` whose fence reads `fence` (```` ```json ````, or
/// ```` ``` ```` for a plain one), without its fences. Panics when there is none.
pub fn code_block<'a>(text: &'a str, after: &str, fence: &str) -> &'a str {
    let (_, rest) = text
        .split_once(after)
        .unwrap_or_else(|| panic!("no {after:?}"));
    let (_, block) = rest
        .split_once(&format!("{fence}\n"))
        .unwrap_or_else(|| panic!("no {fence} block after {after:?}"));
    let (block, _) = block.split_once("```").expect("the block's closing fence");
    block
}

/// The text of each code span (between a pair of single backticks) of `text`.
pub fn code_spans(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// The number `text` starts with, thousands separators allowed (`"53,100 samples"`: 53100.0).
/// Panics when it starts with none.
pub fn leading_number(text: &str) -> f64 {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ','))
        .filter(|&c| c != ',')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number at the start of {text:?}"))
}

/// `text` with every run of white space (line breaks and indentation included) one space, so
/// that a sentence can be found however the paragraph was wrapped.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_blocks_and_sentences_are_found() {
        let text =
            "x\n| a | b |\n|---|---|\n| 1 | two |\n|3|4|\n\nafter\n## S\n```toml\nk = 1\n```\n";
        assert_eq!(table(text, "| a |"), [["1", "two"], ["3", "4"]]);
        assert_eq!(code_block(text, "## S", "```toml"), "k = 1\n");
        assert_eq!(one_line("a\n   b  c\n"), "a b c");
        assert_eq!(
            code_spans("a `b` c `d e` f").collect::<Vec<_>>(),
            ["b", "d e"]
        );
        assert_eq!(leading_number("53,100 samples"), 53100.0);
        assert_eq!(leading_number("4.9 GB"), 4.9);
    }
}
