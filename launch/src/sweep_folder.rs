//! The sweep folder that `ecgfm sweep status` and `sweep report` read: given as `DIR`, or as
//! `--out DIR`, the way `sweep run` spells it, so the command that wrote a folder can be edited
//! into the one that reads it.

use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct SweepFolder {
    /// The sweep folder (`ecgfm sweep run --out DIR`); `sweep report` also takes a report's
    /// `results/` folder.
    #[arg(required_unless_present = "out", conflicts_with = "out")]
    dir: Option<PathBuf>,
    /// The same folder, as `sweep run` names it.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl SweepFolder {
    pub fn path(&self) -> &Path {
        (self.dir.as_deref().or(self.out.as_deref())).expect("clap requires DIR or --out")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        folder: SweepFolder,
    }

    fn parse(args: &[&str]) -> Result<PathBuf, clap::error::ErrorKind> {
        let args = std::iter::once("status").chain(args.iter().copied());
        (Command::try_parse_from(args))
            .map(|c| c.folder.path().to_path_buf())
            .map_err(|e| e.kind())
    }

    #[test]
    fn the_folder_is_given_as_dir_or_as_out_but_not_both() {
        assert_eq!(parse(&["runs/a"]), Ok(PathBuf::from("runs/a")));
        assert_eq!(parse(&["--out", "runs/b"]), Ok(PathBuf::from("runs/b")));
        assert_eq!(
            parse(&["runs/a", "--out", "runs/b"]),
            Err(clap::error::ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            parse(&[]),
            Err(clap::error::ErrorKind::MissingRequiredArgument)
        );
    }
}
