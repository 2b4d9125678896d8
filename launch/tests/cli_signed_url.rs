//! Signed dataset URLs (an access token in the query string). An Azure SAS URL signs every
//! request with its token and no output shows it, even where the server's error repeats the
//! request (as an S3 error repeats the session token it was signed with). A run on a signed URL keeps the token out of
//! every file of its folder; resuming and exporting ask for the full URL again, take a fresh
//! signature of the same address as the same dataset, and train to the bits of a run on the plain
//! path.

mod common;

use common::{
    ecgfm_env, export, export_err, logged_losses, path_str, pretrain_args, run_ok, temp_dir,
};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// `pretrain_args` for 8 steps, `--data url` when given, stopped after 4 steps or resumed.
fn run_args(run: &Path, url: Option<&str>, stop: bool, resume: bool) -> Vec<String> {
    let mut args = pretrain_args(run, 8);
    if let Some(url) = url {
        args.extend(["--data".to_string(), url.to_string()]);
    }
    if stop {
        args.extend(["--stop-after".to_string(), "4".to_string()]);
    }
    if resume {
        args.push("--resume".to_string());
    }
    args
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_signed_urls_token_stays_out_of_the_run_folder_and_resume_asks_for_it() {
    let dir = temp_dir("signed-run");
    let data = common::synth_dataset(&dir);
    let signed = |token: &str| format!("file://{}?sig={token}", data.display());
    let (plain, run) = (dir.join("plain"), dir.join("run"));
    run_ok(&run_args(&plain, Some(path_str(&data)), false, false));
    run_ok(&run_args(&run, Some(&signed("TOKEN1")), true, false));
    assert_eq!(files_holding(&run, "TOKEN1"), Vec::<String>::new());
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("?***"), "{config}");

    let output = ecgfm_env(&run_args(&run, None, false, true), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("saved without its secrets") && stderr.contains("pass --data"),
        "{stderr}"
    );

    let output = ecgfm_env(&run_args(&run, Some(&signed("TOKEN2")), false, true), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("moved"),
        "a new signature is no move: {stderr}"
    );
    assert_eq!(logged_losses(&plain).len(), 8);
    assert_eq!(logged_losses(&run), logged_losses(&plain));
    for token in ["TOKEN1", "TOKEN2"] {
        assert_eq!(files_holding(&run, token), Vec::<String>::new());
    }

    let (pkg, other_pkg) = (dir.join("pkg"), dir.join("other-pkg"));
    let err = export_err(&run, &pkg, &[]);
    assert!(
        err.contains("saved without its secrets") && err.contains("pass --data"),
        "{err}"
    );
    export(&run, &pkg, &["--data", &signed("TOKEN3")]);
    export(&plain, &other_pkg, &[]);
    let card = |pkg: &Path| std::fs::read_to_string(pkg.join("README.md")).unwrap();
    assert!(card(&pkg).contains("?***"), "{}", card(&pkg));
    assert_eq!(
        card(&pkg).replace(&format!("file://{}?***", data.display()), path_str(&data)),
        card(&other_pkg).replace(path_str(&plain), path_str(&run))
    );
    let other = common::synth_dataset_with_seed(&dir, "other", 7);
    let err = export_err(&run, &dir.join("pkg2"), &["--data", path_str(&other)]);
    assert!(err.contains("holds other data"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_signed_output_urls_token_is_not_printed_by_synth_or_merge() {
    let dir = temp_dir("signed-out");
    let signed = |name: &str| format!("file://{}?sig=TOKEN4", dir.join(name).display());
    let said = run_ok(&["data", "synth", "--out", &signed("ds"), "--records", "4"]);
    assert!(said.contains("?***") && !said.contains("TOKEN4"), "{said}");
    let ds = dir.join("ds");
    let said = run_ok(&["data", "merge", path_str(&ds), "--out", &signed("merged")]);
    assert!(said.contains("?***") && !said.contains("TOKEN4"), "{said}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A local HTTP server that answers every request with 403 and keeps each one's request line.
/// Its answer repeats the request it refuses, as S3's `SignatureDoesNotMatch` repeats the
/// canonical request (its signed headers, the session token among them) and the access key id.
fn refusing_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = vec![0u8; 16384];
            let n = conn.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            keep.lock()
                .unwrap()
                .push(text.lines().next().unwrap_or("").to_string());
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch\
                 </Code><CanonicalRequest>{}</CanonicalRequest></Error>",
                text.trim_end()
            );
            let reply = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn an_azure_sas_url_signs_its_requests_with_its_token_and_never_shows_it() {
    let (port, seen) = refusing_server();
    let url = "https://acct.blob.core.windows.net/ecg/ptbxl?sv=2024-01-01&sp=rl&sig=SASTOKEN42";
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AZURE_STORAGE_ENDPOINT", endpoint.as_str()),
        ("AZURE_ALLOW_HTTP", "true"),
    ];
    let output = ecgfm_env(&["data", "inspect", url], &env);
    assert!(!output.status.success());
    let printed = [output.stdout, output.stderr].concat();
    let printed = String::from_utf8_lossy(&printed);
    assert!(!printed.contains("SASTOKEN42"), "{printed}");
    assert!(
        printed.contains("acct.blob.core.windows.net/ecg/ptbxl?***"),
        "{printed}"
    );
    let seen = seen.lock().unwrap();
    let first = seen.first().expect("the store sent a request");
    assert!(
        first.starts_with("GET /ecg/ptbxl/manifest.json?"),
        "{first}"
    );
    assert!(
        first.contains("sig=SASTOKEN42") && first.contains("sv=2024-01-01"),
        "{first}"
    );
}

/// A refused S3 request whose error repeats the signed request (the session token header, the
/// access key id): the error is shown without them.
#[test]
fn a_store_error_repeating_the_signed_request_is_shown_without_its_secrets() {
    let (port, seen) = refusing_server();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDLEAK999"),
        ("AWS_SECRET_ACCESS_KEY", "SECRETsecret123XYZ"),
        ("AWS_SESSION_TOKEN", "TOKENleak777"),
    ];
    let output = ecgfm_env(&["data", "inspect", "s3://ecg/cinc"], &env);
    assert!(!output.status.success());
    let printed = [output.stdout, output.stderr].concat();
    let printed = String::from_utf8_lossy(&printed);
    assert!(printed.contains("SignatureDoesNotMatch"), "{printed}");
    assert!(printed.contains("x-amz-security-token: ***"), "{printed}");
    for secret in ["AKIDLEAK999", "SECRETsecret123XYZ", "TOKENleak777"] {
        assert!(!printed.contains(secret), "{secret}: {printed}");
    }
    assert!(!seen.lock().unwrap().is_empty(), "the store sent a request");
}
