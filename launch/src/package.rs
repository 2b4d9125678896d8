//! The exported package's checksum list, `SHA256SUMS`: one `<sha256 hex>  <file name>` line per
//! file, sorted by name, in the format `sha256sum -c SHA256SUMS` checks. `ecgfm export` writes
//! it last; `ecgfm publish` uploads what it lists and checks every file against it.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// File name of the checksum list inside a package.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// The files `ecgfm export` writes besides `SHA256SUMS`, sorted by name.
pub const PACKAGE_FILES: [&str; 5] = [
    "README.md",
    "config.json",
    "ecgfm_encoder.py",
    "ecgfm_preprocess.py",
    "model.safetensors",
];

/// The files of a package exported before `ecgfm_preprocess.py` was part of one: still a package
/// (publish and export replace it).
const EARLIER_PACKAGE_FILES: [&str; 4] = [
    "README.md",
    "config.json",
    "ecgfm_encoder.py",
    "model.safetensors",
];

/// The folder Python writes beside a module it imports (`import ecgfm_encoder` from the package
/// folder): not part of the package, never uploaded, and replaced with the package.
pub const PYTHON_CACHE: &str = "__pycache__";

/// Whether a checksum list is one `ecgfm export` writes: it lists exactly the package's files
/// (a `SHA256SUMS` of `sha256sum` over other files is not a package's).
pub fn is_package_listing(sums: &[FileSum]) -> bool {
    let mut names: Vec<&str> = sums.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names == PACKAGE_FILES || names == EARLIER_PACKAGE_FILES
}

/// One package file and the lower-case hex SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSum {
    pub name: String,
    pub sha256: String,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The text of `SHA256SUMS` for `sums` (sorted by name).
pub fn render(sums: &[FileSum]) -> String {
    let mut sorted = sums.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
        .iter()
        .map(|s| format!("{}  {}\n", s.sha256, s.name))
        .collect()
}

/// Parses the text of a `SHA256SUMS` file; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<FileSum>> {
    let mut sums = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("{origin} line {}: {why}: {line:?}", index + 1);
        let Some((hash, name)) = line.split_once("  ") else {
            bail!(bad("expected `<sha256>  <file name>`"));
        };
        let valid_hash = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid_hash {
            bail!(bad("not a SHA-256 hex digest"));
        }
        let valid_name = !name.is_empty()
            && name != SUMS_FILE
            && !name.contains(['/', '\\'])
            && name != "."
            && name != "..";
        if !valid_name {
            bail!(bad("not a plain file name of the package"));
        }
        sums.push(FileSum {
            name: name.to_string(),
            sha256: hash.to_ascii_lowercase(),
        });
    }
    if sums.is_empty() {
        bail!("{origin} lists no file");
    }
    Ok(sums)
}

/// The size and lower-case hex SHA-256 of the file at `path`, read in pieces (a package's
/// weights may be larger than the memory at hand).
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Checks the package folder `dir`: every file `SHA256SUMS` lists matches its checksum, and the
/// folder holds nothing unlisted. Returns the `SHA256SUMS` text and each listed file's size
/// (the files are read as streams, never whole in memory).
pub fn read_verified(dir: &Path) -> Result<(String, Vec<(FileSum, u64)>)> {
    let sums_path = dir.join(SUMS_FILE);
    let text = std::fs::read_to_string(&sums_path).with_context(|| {
        format!(
            "{} is not an ecgfm package (no readable {SUMS_FILE}; write one with `ecgfm export`)",
            dir.display()
        )
    })?;
    let sums = parse(&text, &sums_path.display().to_string())?;
    let mut files = Vec::with_capacity(sums.len());
    for sum in sums {
        let path = dir.join(&sum.name);
        let (size, actual) = sha256_file(&path)
            .with_context(|| format!("reading {} (listed in {SUMS_FILE})", path.display()))?;
        if actual != sum.sha256 {
            bail!(
                "{} does not match {SUMS_FILE}: SHA-256 {actual}, listed {}",
                path.display(),
                sum.sha256
            );
        }
        files.push((sum, size));
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let listed = name == SUMS_FILE || files.iter().any(|(s, _)| s.name == name);
        if !listed && name != PYTHON_CACHE {
            bail!(
                "{} holds {name}, which {SUMS_FILE} does not list (export the package again)",
                dir.display()
            );
        }
    }
    Ok((text, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip_sorted() {
        let sums = vec![
            FileSum {
                name: "model.safetensors".into(),
                sha256: sha256_hex(b"weights"),
            },
            FileSum {
                name: "config.json".into(),
                sha256: sha256_hex(b"{}"),
            },
        ];
        let text = render(&sums);
        assert!(text.starts_with(&format!("{}  config.json\n", sha256_hex(b"{}"))));
        let back = parse(&text, "SUMS").unwrap();
        assert_eq!(back[0].name, "config.json");
        assert_eq!(back[1], sums[0]);
    }

    #[test]
    fn only_the_files_export_writes_make_a_package_listing() {
        let listing = |names: &[&str]| -> Vec<FileSum> {
            let sum = |name: &&str| FileSum {
                name: name.to_string(),
                sha256: sha256_hex(name.as_bytes()),
            };
            names.iter().map(sum).collect()
        };
        let mut names = PACKAGE_FILES.to_vec();
        names.reverse();
        assert!(is_package_listing(&listing(&names)));
        assert!(!is_package_listing(&listing(&names[1..])));
        names.push("notes.txt");
        assert!(!is_package_listing(&listing(&names)));
        assert!(!is_package_listing(&listing(&["data.csv", "notes.txt"])));
        assert!(is_package_listing(&listing(&EARLIER_PACKAGE_FILES)));
    }

    /// A package folder holding a file its `SHA256SUMS` does not list is refused, naming it;
    /// the `__pycache__` an import of the encoder leaves is not counted.
    #[test]
    fn read_verified_refuses_an_unlisted_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let sums = [FileSum {
            name: "config.json".into(),
            sha256: sha256_hex(b"{}"),
        }];
        std::fs::write(dir.path().join(SUMS_FILE), render(&sums)).unwrap();
        std::fs::create_dir(dir.path().join(PYTHON_CACHE)).unwrap();
        let (_, files) = read_verified(dir.path()).unwrap();
        assert_eq!(files, [(sums[0].clone(), 2)]);
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let err = read_verified(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("holds notes.txt, which SHA256SUMS does not list"),
            "{err}"
        );
    }

    #[test]
    fn parse_names_the_bad_line() {
        let err = parse("abc  x\n", "pkg/SHA256SUMS").unwrap_err().to_string();
        assert!(err.contains("pkg/SHA256SUMS line 1"), "{err}");
        let hash = "0".repeat(64);
        let err = parse(&format!("{hash}  ../etc/passwd\n"), "S").unwrap_err();
        assert!(err.to_string().contains("plain file name"), "{err}");
        assert!(parse("", "S").unwrap_err().to_string().contains("no file"));
    }
}
