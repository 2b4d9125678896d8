//! Helpers shared by the loader (and ingest) integration tests: a moto S3 server and a GCS stand-in
//! built on it, a small synthetic dataset writer and reading it back through the loader, and the
//! lease scenario each object store's test runs. Each test binary uses a subset, hence `dead_code`
//! is allowed.
#![allow(dead_code)]

pub mod dataset;
pub mod gcs;
pub mod lease;
pub mod reading;
pub mod s3;
