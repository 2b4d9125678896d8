//! ecgfm-tests: workspace-level integration tests, in `tests/tests/`.
//!
//! They drive the `ecgfm` command in-process through `ecgfm_launch` across crate boundaries:
//! ingest or synthesise a dataset with `ecgfm-data`, then pretrain from it with `ecgfm-trainer`,
//! and check exact resume end to end; `reference_losses.rs` trains the committed reference curves
//! again and requires the same bits. Real recordings are read from `../shared/data` when present.
//! The PyTorch reference model that the trainer's parity test is checked against lives in
//! `tests/reference/`; `reference_self_check.rs` runs its self-check (`self_check.py`).
