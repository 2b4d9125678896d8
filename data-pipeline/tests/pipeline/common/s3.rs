//! A throwaway S3 server for tests: moto (`python3 -m moto.server`) on a free localhost port,
//! with one bucket created, killed when dropped. Tests pass `MotoS3::options()` to
//! `store::open_url_with` instead of changing the process environment.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto S3 server with one bucket.
pub struct MotoS3 {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
}

impl MotoS3 {
    /// Starts moto and creates `bucket`. Returns `None` (after printing why) when moto is not
    /// installed on a developer's machine; under scripts/test.sh or on CI that fails the test.
    pub fn start(bucket: &str) -> Option<Self> {
        Self::start_with(bucket, &["-m", "moto.server", "-H", "127.0.0.1", "-p"])
    }

    /// Like [`MotoS3::start`], running `python3 ARGS PORT` (moto's server or a wrapper of it).
    pub fn start_with(bucket: &str, args: &[&str]) -> Option<Self> {
        if !ecgfm_test_support::python_has(&["moto.server"]) {
            ecgfm_test_support::skip_without_oracle(
                "python3 -m moto.server (pip install 'moto[server]')",
            );
            return None;
        }
        let port = ecgfm_test_support::free_port();
        let child = Command::new("python3")
            .args(args)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start moto");
        let server = MotoS3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match http(port, "PUT", &format!("/{bucket}")) {
                Ok(status) if status.contains(" 200") => return Some(server),
                Ok(status) => panic!("moto refused to create bucket {bucket}: {status}"),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!("moto did not answer on port {port} within 60 s: {e}"),
            }
        }
    }

    /// Store options (`store::open_url_with`) pointing at this server with dummy credentials.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("aws_endpoint", self.endpoint.clone()),
            ("aws_access_key_id", "testing".into()),
            ("aws_secret_access_key", "testing".into()),
            ("aws_region", "us-east-1".into()),
            ("aws_allow_http", "true".into()),
        ]
    }

    /// The same settings as owned pairs (the options fields of ingest, synth and merge).
    pub fn store_options(&self) -> Vec<(String, String)> {
        self.options()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// The whole response to an unsigned `GET path` (moto accepts it), e.g. `/bucket?uploads`.
    pub fn get(&self, path: &str) -> String {
        let port = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        http(port, "GET", path).expect("moto answers")
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix)
    }

    /// Opens `s3://bucket/prefix` on this server.
    pub fn open(&self, prefix: &str) -> ecgfm_data::store::StoreRoot {
        ecgfm_data::store::open_url_with(&self.url(prefix), &self.options())
            .expect("open moto store")
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends an unsigned `METHOD path` (moto accepts it) and returns the whole response, from the
/// status line.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
