//! Test only: the `ecgfm` commands the documentation shows (README.md, docs/, the messages and
//! doc comments of the workspace's sources, which tell users what to run, and the shell scripts,
//! `scripts/gpu-check.sh` above all, which runs where a wrong flag costs GPU time) name subcommands
//! and flags the command line has, and their `--set` overrides name settings that exist with
//! values of the right type; a flag the Markdown names alone (`--collective-timeout`) is one some
//! command has. Flags are looked up in clap's definition (`cli::Cli`); the commands themselves
//! are not run. Also: the sweep files the docs publish read, and the README's map of folders is
//! the workspace.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use ecgfm_test_support::markdown::code_spans;

use crate::cli::Cli;

/// Words that end a command in a shell line or in prose.
const ENDS: [&str; 9] = ["|", "||", "&&", ";", ">", "2>", "2>&1", "#", "<"];

/// How the errors of a sweep file (serde) and of a run's settings name a key that does not exist.
const UNKNOWN_NAME: [&str; 3] = ["unknown field", "unknown key", "unknown section"];

/// Folders whose files are not documentation.
const SKIPPED: [&str; 5] = ["target", "tests", "node_modules", "gpu-bin", "runs"];

/// One command's arguments, with the file they were found in.
struct Found {
    file: String,
    args: Vec<String>,
}

/// The command lines of a Markdown file: its fenced code blocks' lines (backslash continuations
/// joined) and its inline code spans (which may wrap within a paragraph).
fn markdown_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut prose = String::new();
    let mut in_block = false;
    let mut block_line = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            commands.extend(join_continued(&mut block_line, line));
        } else if line.trim().is_empty() {
            commands.extend(code_spans(&prose).map(str::to_string));
            prose.clear();
        } else {
            prose.push_str(line);
            prose.push(' ');
        }
    }
    commands.extend(code_spans(&prose).map(str::to_string));
    commands
}

/// The code spans of a Rust file's lines, string continuations (`\` at a line's end) joined.
fn rust_commands(text: &str) -> Vec<String> {
    let mut joined = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        match line.strip_suffix('\\') {
            Some(start) => {
                joined.push_str(start);
                if let Some(next) = lines.peek_mut() {
                    *next = next.trim_start();
                }
            }
            None => {
                joined.push_str(line);
                joined.push('\n');
            }
        }
    }
    joined
        .lines()
        .flat_map(|line| code_spans(line).map(str::to_string))
        .collect()
}

/// The command lines of a shell script: its lines (backslash continuations joined) with the
/// binary's variable (`"$ecgfm"`) read as `ecgfm` and double quotes dropped, and the code spans
/// of its comments.
fn shell_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut joined = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            commands.extend(code_spans(line).map(str::to_string));
            continue;
        }
        if let Some(whole) = join_continued(&mut joined, line) {
            commands.push(whole.replace("\"$ecgfm\"", "ecgfm").replace('"', ""));
        }
    }
    commands
}

/// A shell line with its backslash continuations: `line` is added to `joined`; once a line does
/// not end in `\`, the whole command (and `joined` empty again).
fn join_continued(joined: &mut String, line: &str) -> Option<String> {
    match line.strip_suffix('\\') {
        Some(start) => {
            joined.push_str(start);
            None
        }
        None => Some(std::mem::take(joined) + line),
    }
}

/// The argument lists following each `ecgfm` (or `.../ecgfm`) in `line`, up to the end of the
/// shell command.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        // A path to the binary as another program's argument (`python3 bench.py
        // target/release/ecgfm --repeats 5`) is not a command of it.
        let starts_command = i == 0
            || ENDS.contains(&words[i - 1])
            || ["time", "exec"].contains(&words[i - 1])
            || words[i - 1].contains('=');
        if *word != "ecgfm" && !(word.ends_with("/ecgfm") && starts_command) {
            continue;
        }
        let args = words[i + 1..]
            .iter()
            .take_while(|w| !ENDS.contains(w) && !w.starts_with('#'))
            .map(|w| w.trim_end_matches([',', ')', ':', ';']).to_string())
            .collect();
        found.push(args);
    }
    found
}

/// The command line's definition, built once (global flags propagated to every subcommand).
fn cli() -> &'static clap::Command {
    static CLI: std::sync::OnceLock<clap::Command> = std::sync::OnceLock::new();
    CLI.get_or_init(|| {
        let mut cli = Cli::command();
        cli.build();
        cli
    })
}

/// Checks one argument list against the command line; the problems found, each a sentence.
fn check(args: &[String]) -> Vec<String> {
    let mut command = cli();
    let mut path = vec!["ecgfm".to_string()];
    let mut rest = args;
    // `cargo run --bin ecgfm -- pretrain`.
    if rest.first().map(String::as_str) == Some("--") {
        rest = &rest[1..];
    }
    while let Some(sub) = rest.first().and_then(|w| command.find_subcommand(w)) {
        path.push(sub.get_name().to_string());
        command = sub;
        rest = &rest[1..];
    }
    let mut problems = Vec::new();
    let shown = path.join(" ");
    if let Some(word) = rest.first() {
        let looks_like_one = word.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        if command.has_subcommands() && looks_like_one && !word.starts_with('-') {
            problems.push(format!("`{shown}` has no subcommand `{word}`"));
        }
    }
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            if path.last().map(String::as_str) == Some("launch") {
                let child: Vec<String> = words.cloned().collect();
                problems.extend(check(&child));
            }
            break;
        }
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        let known = command
            .get_arguments()
            .any(|a| long_names(a).any(|n| n == name));
        if !known && name != "help" {
            problems.push(format!("`{shown}` has no flag `--{name}`"));
            continue;
        }
        if name == "set" {
            if let Some(assignment) = inline.or_else(|| words.next().cloned()) {
                problems.extend(check_set(&shown, &assignment));
            }
        }
    }
    problems
}

/// Checks one `--set KEY=VALUE` of `command`: a run's setting (pretrain) or a sweep file's
/// (sweep run, against the demo preset's file). A value in capitals (`DIR`, `N`), with `...` or
/// a shell variable (`$mode`) is a placeholder: only its key is checked.
fn check_set(command: &str, assignment: &str) -> Option<String> {
    let (key, value) = assignment.split_once('=')?;
    let placeholder = value.contains("...")
        || value.contains('$')
        || (!value.is_empty() && value.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
    let value = if placeholder {
        "\"placeholder\""
    } else {
        value
    };
    let assignment = format!("{key}={value}");
    let set = |doc: &mut toml::Table| {
        ecgfm_trainer::config::apply_override(doc, &assignment).map_err(|e| e.to_string())
    };
    let checked = if command.ends_with("sweep run") {
        let demo = ecgfm_sweep::presets::text("demo").expect("the demo preset");
        let mut doc: toml::Table = demo.parse().expect("the demo preset is TOML");
        set(&mut doc).and_then(|()| {
            let text = toml::to_string(&doc).expect("a TOML table writes");
            let spec = ecgfm_sweep::SweepSpec::parse(&text, "the demo preset");
            spec.map(drop).map_err(|e| e.to_string())
        })
    } else if command.ends_with("pretrain") {
        let mut alone = toml::Table::new();
        set(&mut alone)
            .and_then(|()| ecgfm_trainer::config::check_sections(&alone).map_err(|e| e.to_string()))
    } else {
        return None;
    };
    match checked {
        Ok(()) => None,
        // A placeholder's value may be of the wrong type; its key must still exist.
        Err(e) if placeholder && !UNKNOWN_NAME.iter().any(|u| e.contains(u)) => None,
        Err(e) => Some(format!("`{command} --set {assignment}`: {e}")),
    }
}

/// Every Markdown file, Rust source and shell script of the workspace but its tests (which hold
/// wrong commands on purpose) and build outputs.
fn documents() -> Vec<PathBuf> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.parent().expect("the crate sits in the workspace");
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a workspace folder") {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() && !SKIPPED.contains(&name.as_ref()) && !name.starts_with('.') {
                folders.push(path);
            } else if path
                .extension()
                .is_some_and(|e| ["md", "rs", "sh"].contains(&e.to_str().unwrap_or_default()))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The command lines and code spans of every document but this file, each with its file.
fn documented_lines() -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for path in documents() {
        if path.ends_with(file!().rsplit('/').next().unwrap()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a readable document");
        let found = match path.extension().and_then(|e| e.to_str()) {
            Some("md") => markdown_commands(&text),
            Some("sh") => shell_commands(&text),
            _ => rust_commands(&text),
        };
        let file = path.display().to_string();
        lines.extend(found.into_iter().map(|line| (file.clone(), line)));
    }
    lines
}

/// An argument's long flag names: its own and its aliases.
fn long_names(arg: &clap::Arg) -> impl Iterator<Item = &str> {
    let aliases = arg.get_all_aliases().unwrap_or_default();
    arg.get_long().into_iter().chain(aliases)
}

/// Every long flag of every `ecgfm` command and subcommand.
fn every_flag() -> std::collections::HashSet<String> {
    let mut flags = std::collections::HashSet::new();
    let mut commands = vec![cli()];
    while let Some(command) = commands.pop() {
        for arg in command.get_arguments() {
            flags.extend(long_names(arg).map(str::to_string));
        }
        commands.extend(command.get_subcommands());
    }
    flags
}

/// Flags of other programs that the docs name alone: srun's, a benchmark script's (the merge
/// benchmark's simulated link), compute-sanitizer's.
const OTHER_PROGRAMS_FLAGS: [&str; 4] = ["cpus-per-task", "kill-on-bad-exit", "latency-ms", "tool"];

/// A code span that is a flag alone (`--collective-timeout`, `--zero 1`): its name, when it is
/// one.
fn lone_flag(span: &str) -> Option<&str> {
    let name = span.trim().strip_prefix("--")?;
    let end = name
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(name.len());
    (end > 0).then(|| &name[..end])
}

/// Where the user's documentation (the Markdown files but bench/'s, which documents the Python
/// scripts' flags) names a flag alone, it names one some `ecgfm` command has (or another
/// program's, listed above): a flag renamed or removed leaves no sentence telling users to pass
/// it.
#[test]
fn every_flag_named_alone_is_a_flag_of_some_command() {
    let flags = every_flag();
    let mut named = 0;
    let mut problems = Vec::new();
    for (file, span) in documented_lines() {
        if !file.ends_with(".md") || file.contains("/bench/") {
            continue;
        }
        let Some(name) = lone_flag(&span) else {
            continue;
        };
        named += 1;
        if !flags.contains(name) && !OTHER_PROGRAMS_FLAGS.contains(&name) && name != "help" {
            problems.push(format!("{file}: `{span}`: no ecgfm command has `--{name}`"));
        }
    }
    assert!(
        named >= 50,
        "only {named} flags named alone found: the extraction broke"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(lone_flag("--zero 1"), Some("zero"));
    assert_eq!(lone_flag("--set train.recompute=true"), Some("set"));
    assert_eq!(lone_flag("-- pretrain"), None);
    assert_eq!(lone_flag("cargo --release"), None);
}

#[test]
fn every_documented_command_names_flags_and_settings_that_exist() {
    let mut found = Vec::new();
    for (file, line) in documented_lines() {
        for args in invocations(&line) {
            found.push(Found {
                file: file.clone(),
                args,
            });
        }
    }
    let problems: Vec<String> = found
        .iter()
        .flat_map(|f| {
            check(&f.args)
                .into_iter()
                .map(move |p| format!("{}: `ecgfm {}`: {p}", f.file, f.args.join(" ")))
        })
        .collect();
    let with_flags = found
        .iter()
        .filter(|f| f.args.iter().any(|a| a.starts_with("--")))
        .count();
    assert!(
        with_flags >= 100,
        "only {with_flags} documented commands with flags found: the extraction broke"
    );
    let in_gpu_check = found
        .iter()
        .filter(|f| f.file.ends_with("scripts/gpu-check.sh") && f.args.len() > 2)
        .count();
    say!("{with_flags} documented commands with flags, {in_gpu_check} in gpu-check.sh");
    assert!(
        in_gpu_check >= 15,
        "only {in_gpu_check} commands found in scripts/gpu-check.sh: the extraction broke"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_wrong_flag_subcommand_or_setting_is_found() {
    let problems =
        |line: &str| -> Vec<String> { invocations(line).iter().flat_map(|a| check(a)).collect() };
    assert!(problems("ecgfm pretrain --steps 10 --set optim.lr=3e-4").is_empty());
    assert!(problems("ecgfm launch --nproc-per-node 2 -- pretrain --set train.seed=1").is_empty());
    assert!(problems("cargo run --bin ecgfm -- data inspect DIR --record-ids val").is_empty());
    let one = |line: &str| {
        let found = problems(line);
        assert_eq!(found.len(), 1, "{line}: {found:?}");
        found[0].clone()
    };
    assert!(one("ecgfm pretrain --stpes 10").contains("no flag `--stpes`"));
    assert!(one("ecgfm data ingets DIR").contains("no subcommand `ingets`"));
    assert!(one("ecgfm launch --nproc-per-node 2 -- pretrain --bogus").contains("`--bogus`"));
    assert!(one("ecgfm pretrain --set optim.lrr=1").contains("unknown key `lrr`"));
    assert!(one("ecgfm pretrain --set train.recompute=maybe").contains("recompute"));
    assert!(one("ecgfm sweep run --preset demo --set budget.flopz=1").contains("flopz"));
    assert!(problems("ecgfm sweep run F --set ingest.ptbxl.source=DIR").is_empty());
    let rust = "    \"run `ecgfm data inspect {url} --record-idz \\\n       val`\"";
    assert_eq!(
        rust_commands(rust),
        ["ecgfm data inspect {url} --record-idz val"]
    );
    let markdown = "a `ecgfm eval --run\nRUN` b\n\n```sh\necgfm embed \\\n  --out X\n```\n";
    assert_eq!(
        markdown_commands(markdown),
        ["ecgfm eval --run RUN", "ecgfm embed   --out X"]
    );
}

/// The sweep files published beside their reports (`docs/sweeps/*/sweep.toml`, the variants
/// beside them, the copies in `results/`) are still sweep files: what a reader runs again to
/// reproduce a report.
#[test]
fn every_published_sweep_file_still_reads() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let files: Vec<PathBuf> = ecgfm_test_support::files_below(&docs)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "toml"))
        .collect();
    for file in &files {
        if let Err(e) = ecgfm_sweep::SweepSpec::read(file) {
            panic!("{e}");
        }
    }
    assert!(
        files.len() >= 10,
        "only {} sweep files under docs/",
        files.len()
    );
}

/// The sweep file docs/sweeps.md explains field by field reads as one.
#[test]
fn the_documented_sweep_file_reads() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sweeps.md");
    let text = std::fs::read_to_string(&guide).expect("docs/sweeps.md");
    let file = ecgfm_test_support::markdown::code_block(&text, "", "```toml");
    if let Err(e) = ecgfm_sweep::SweepSpec::parse(file, "docs/sweeps.md") {
        panic!("{e}");
    }
}

/// The README's "What is where" table names every workspace member, each under its folder with
/// its package name, and only folders that exist.
#[test]
fn the_readme_map_of_folders_and_crates_is_the_workspace() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut listed = Vec::new();
    for row in ecgfm_test_support::markdown::table(&readme, "| folder | crate |") {
        let cell = |i: usize| row[i].trim_matches('`');
        let (folder, package) = (cell(0).trim_end_matches('/'), cell(1));
        assert!(
            root.join(folder).is_dir(),
            "README lists {folder}/, which is not there"
        );
        if package.is_empty() {
            continue;
        }
        let manifest = std::fs::read_to_string(root.join(folder).join("Cargo.toml")).unwrap();
        let name = format!("name = \"{package}\"");
        assert!(
            manifest.contains(&name),
            "{folder}/Cargo.toml is not {package}"
        );
        listed.push(folder.to_string());
    }
    let workspace: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut members: Vec<String> = workspace["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    members.sort();
    listed.sort();
    assert_eq!(listed, members);
}
