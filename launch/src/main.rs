//! The `ecgfm` command.
fn main() {}
