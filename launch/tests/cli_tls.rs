//! An S3 store over HTTPS whose certificate its own authority signed, as an on-premises MinIO's
//! is: with `SSL_CERT_FILE` naming that authority, `data synth` writes a dataset there, `data
//! inspect` checks it and a run trains on it, through the same TLS stack real clouds use; with a
//! bundle that lacks it, the error says the authority is not trusted and what to set, at once.
//! The server is moto behind `common/tls_stand_in.py`, which makes the certificates. Through an HTTPS proxy
//! (`common/connect_proxy.py`, with a user and password in `HTTPS_PROXY`) the same works, and a
//! proxy that is down is named without its password.

mod common;
use common::{failed, path_str, pretrain_args, succeeded, temp_dir, ECGFM};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// moto on HTTPS with one bucket, killed when dropped.
struct TlsS3 {
    child: Child,
    endpoint: String,
    folder: PathBuf,
}

impl TlsS3 {
    /// Starts the stand-in with `bucket`; `None` (after printing why) without moto, as the
    /// other object-store tests.
    fn start(bucket: &str) -> Option<Self> {
        if !ecgfm_test_support::python_has(&["moto.server", "cryptography"]) {
            ecgfm_test_support::skip_without_oracle("python3 with moto[server] and cryptography");
            return None;
        }
        let folder = temp_dir(&format!("tls-server-{bucket}"));
        let port = ecgfm_test_support::free_port();
        let child = Command::new("python3")
            .args(["-c", include_str!("common/tls_stand_in.py")])
            .arg(port.to_string())
            .arg(&folder)
            .arg(bucket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts the TLS stand-in");
        let server = TlsS3 {
            child,
            endpoint: format!("https://127.0.0.1:{port}"),
            folder,
        };
        // The bucket exists before the server listens.
        ecgfm_test_support::wait_until_listening(port, "the TLS stand-in");
        Some(server)
    }

    /// The settings a user gives for an S3-compatible store, with `ca_file` as the trusted
    /// authorities.
    fn env(&self, ca_file: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("SSL_CERT_FILE", path_str(ca_file).into()),
        ]
    }

    fn run(&self, args: &[&str], ca_file: &Path) -> Output {
        self.run_with(args, ca_file, &[])
    }

    /// [`TlsS3::run`] with `extra` variables, and none of the proxy settings of this process's
    /// environment (a developer's proxy would not reach this server).
    fn run_with(&self, args: &[&str], ca_file: &Path, extra: &[(&str, String)]) -> Output {
        let mut command = Command::new(ECGFM);
        for key in PROXY_VARIABLES {
            command.env_remove(key);
        }
        command
            .args(args)
            .envs(self.env(ca_file))
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }
}

/// The variables that route requests through a proxy, or around it.
const PROXY_VARIABLES: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

impl Drop for TlsS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

#[test]
fn a_store_with_its_own_authority_works_once_trusted_and_says_what_to_set_when_not() {
    let Some(server) = TlsS3::start("ecgfm-tls") else {
        return;
    };
    let (trusted, other) = (
        server.folder.join("ca.pem"),
        server.folder.join("other-ca.pem"),
    );
    let url = "s3://ecgfm-tls/ds";
    let synth = ["data", "synth", "--out", url, "--records", "24"];
    succeeded(&synth, server.run(&synth, &trusted));
    let inspect = ["data", "inspect", url];
    let report = succeeded(&inspect, server.run(&inspect, &trusted));
    assert!(
        report.contains("all 1 match the manifest's SHA-256"),
        "{report}"
    );

    let dir = temp_dir("tls-run");
    let mut args = pretrain_args(&dir.join("run"), 2);
    args.extend(["--data".to_string(), url.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    succeeded(&args, server.run(&args, &trusted));
    assert!(dir.join("run/metrics.jsonl").is_file());
    std::fs::remove_dir_all(&dir).unwrap();

    // A bundle without the store's authority: the certificate is refused, and the error says
    // why and what to set, after the object it wanted, at the first refusal: it is not retried
    // (ten retries, a log line each, and the TLS verifier's own log line each time, until
    // 2026-12-06), so the error is all there is to read.
    let stderr = failed(&inspect, server.run(&inspect, &other));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("retries"), "{stderr}");
    for said in [
        "object store error on ds/manifest.json",
        "the server's TLS certificate is signed by an authority this machine does not trust",
        "set SSL_CERT_FILE to a PEM file holding that authority's certificate",
        "invalid peer certificate: UnknownIssuer",
    ] {
        assert!(stderr.contains(said), "{said}\nnot in\n{stderr}");
    }
}

/// `connect_proxy.py` on a free port, appending each request line to a log; killed when dropped.
struct Proxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Proxy {
    fn start(folder: &Path) -> Proxy {
        let (port, log) = (ecgfm_test_support::free_port(), folder.join("proxy.log"));
        let child = Command::new("python3")
            .args(["-c", include_str!("common/connect_proxy.py")])
            .arg(port.to_string())
            .arg(&log)
            .spawn()
            .expect("python3 starts the proxy");
        ecgfm_test_support::wait_until_listening(port, "the proxy");
        Proxy { child, port, log }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn requests_go_through_the_https_proxy_and_a_proxy_that_is_down_is_named_without_its_password() {
    let Some(server) = TlsS3::start("ecgfm-proxied") else {
        return;
    };
    let trusted = server.folder.join("ca.pem");
    let proxy = Proxy::start(&server.folder);
    let password = "proxy-password-do-not-print";
    let through = |port: u16| {
        let url = format!("http://ward7:{password}@127.0.0.1:{port}");
        vec![("HTTPS_PROXY", url)]
    };
    let url = "s3://ecgfm-proxied/ds";
    let synth = ["data", "synth", "--out", url, "--records", "12"];
    let inspect = ["data", "inspect", url];
    for args in [&synth[..], &inspect[..]] {
        let output = server.run_with(args, &trusted, &through(proxy.port));
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let stdout = succeeded(args, output);
        assert!(!stdout.contains(password) && !stderr.contains(password));
    }
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    let store = server.endpoint.trim_start_matches("https://");
    assert!(
        log.lines().all(|l| l == format!("CONNECT {store} auth")),
        "{log}"
    );
    assert!(log.lines().count() >= 2, "{log}");

    // Nothing listens on the proxy's port: the error names the proxy, without its password.
    let down = ecgfm_test_support::free_port();
    let stderr = failed(
        &inspect,
        server.run_with(&inspect, &trusted, &through(down)),
    );
    let named =
        format!("the request went through the proxy http://***@127.0.0.1:{down}/ (HTTPS_PROXY)");
    assert!(stderr.contains(&named), "{named}\nnot in\n{stderr}");
    assert!(
        stderr.contains("NO_PROXY lists the hosts to reach directly"),
        "{stderr}"
    );
    assert!(!stderr.contains(password), "{stderr}");
}
