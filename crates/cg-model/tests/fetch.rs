//! `cg data fetch` against a loopback HTTP server that serves files this test wrote.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use cg_model::data::fetch::{RemoteFile, Source, fetch, md5_of};

/// Serves `files` (name -> bytes) over HTTP/1.1 on 127.0.0.1 for `requests` requests.
fn serve(files: Vec<(String, Vec<u8>)>, requests: usize) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let files = Arc::new(files);
    let handle = thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            match files.iter().find(|(name, _)| *name == path) {
                Some((_, body)) => {
                    write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .unwrap();
                    s.write_all(body).unwrap();
                }
                None => write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap(),
            }
        }
    });
    (base, handle)
}

#[test]
fn downloads_verify_checksums() {
    let good = b"pretend these are MNIST bytes".to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, &good).unwrap();
    let md5 = md5_of(&probe).unwrap();
    let md5: &'static str = Box::leak(md5.into_boxed_str());
    let files: &'static [RemoteFile] =
        Box::leak(vec![RemoteFile { name: "a.gz", md5 }].into_boxed_slice());
    let src = Source {
        name: "test",
        base_url: "http://unused.invalid/",
        files,
        unpack: false,
    };

    let (base, server) = serve(vec![("a.gz".into(), good.clone())], 1);
    let dest = tmp.path().join("out");
    let mut calls = 0;
    let dir = fetch(&src, Some(&base), &dest, &mut |_, _, _| calls += 1).unwrap();
    server.join().unwrap();
    assert_eq!(std::fs::read(dir.join("a.gz")).unwrap(), good);
    assert!(calls > 0, "no progress reported");

    // Present and verified: no second download (the server is gone).
    fetch(&src, Some(&base), &dest, &mut |_, _, _| {}).unwrap();

    // A server that serves other bytes: the checksum fails and nothing is left behind.
    let (base, server) = serve(vec![("a.gz".into(), b"tampered".to_vec())], 1);
    let dest2 = tmp.path().join("out2");
    let err = fetch(&src, Some(&base), &dest2, &mut |_, _, _| {})
        .unwrap_err()
        .to_string();
    server.join().unwrap();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!dest2.join("a.gz").exists() && !dest2.join("a.gz.part").exists());

    // A missing file is an HTTP error naming the URL.
    let (base, server) = serve(vec![], 1);
    let err = fetch(
        &src,
        Some(&base),
        &tmp.path().join("out3"),
        &mut |_, _, _| {},
    )
    .unwrap_err()
    .to_string();
    server.join().unwrap();
    assert!(err.contains("a.gz") && err.contains("404"), "{err}");
}
