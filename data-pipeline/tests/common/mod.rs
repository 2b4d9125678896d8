//! Helpers shared by the loader (and ingest) integration tests: a moto S3 server and a small
//! synthetic dataset writer. Each test binary uses a subset, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod dataset;
pub mod s3;
