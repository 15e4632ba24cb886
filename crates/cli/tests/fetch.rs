//! `heapgate fetch` against a stub load balancer: the real binary, and an HTTP/1.1 server on
//! loopback that hands each new connection to the next of three tasks (round robin), each
//! answering like heapgate-proxy unless a test scripts otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "secret-key-for-fetch-tests";
const TASKS: [&str; 3] = ["t1", "t2", "t3"];

/// What a task is asked.
struct Req<'a> {
    /// The task this connection landed on.
    task: &'static str,
    /// `task=` in the query.
    wanted: Option<&'a str>,
    probe: bool,
    /// How many snapshot requests meant for this task (no probe, `task=` absent or its own) it
    /// answered before this one.
    mine: usize,
}

enum Reply {
    Status {
        code: u16,
        headers: Vec<(String, String)>,
    },
    Snapshot {
        headers: Vec<(String, String)>,
        body: String,
        ending: Ending,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Chunked, with the terminating chunk.
    Complete,
    /// Chunked, closed after the first half without the terminating chunk.
    Cut,
    /// Neither chunked nor a length: the end is the close, after the first half.
    CutUnframed,
    /// The first half, then nothing until the client goes away.
    Hold,
}

type Handler = dyn Fn(&Req<'_>) -> Reply + Send + Sync;

/// One request as the stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    connection: usize,
    task: &'static str,
    wanted: Option<String>,
    probe: bool,
    hash: Option<String>,
    asked_close: bool,
}

#[derive(Default)]
struct Log {
    connections: usize,
    requests: Vec<Seen>,
    mine: [usize; 3],
}

struct Stub {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    tls: bool,
}

impl Stub {
    fn start(handler: impl Fn(&Req<'_>) -> Reply + Send + Sync + 'static) -> Stub {
        Stub::start_with(handler, None)
    }

    /// With `tls`, every connection is HTTPS with that server configuration.
    fn start_with(
        handler: impl Fn(&Req<'_>) -> Reply + Send + Sync + 'static,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tls_enabled = tls.is_some();
        let log = Arc::new(Mutex::new(Log::default()));
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let index = {
                    let mut log = shared.lock().unwrap();
                    log.connections += 1;
                    log.connections - 1
                };
                let (log, handler, tls) = (Arc::clone(&shared), Arc::clone(&handler), tls.clone());
                // A bound on how long a held answer waits for the client to go away.
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                std::thread::spawn(move || match tls {
                    None => serve(stream, index, &log, &*handler),
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(config).unwrap();
                        let stream = rustls::StreamOwned::new(connection, stream);
                        serve(stream, index, &log, &*handler);
                    }
                });
            }
        });
        Stub {
            addr,
            log,
            tls: tls_enabled,
        }
    }

    fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().requests.clone()
    }

    /// Every request came on its own connection and asked the server to close it.
    fn assert_one_request_per_connection(&self) {
        let log = self.log.lock().unwrap();
        assert_eq!(log.connections, log.requests.len(), "{:?}", log.requests);
        for (i, seen) in log.requests.iter().enumerate() {
            assert_eq!(seen.connection, i, "{seen:?}");
            assert!(seen.asked_close, "no Connection: close: {seen:?}");
        }
    }
}

/// Answers requests on one connection until it is closed (a client that keeps connections
/// alive would show up as several requests on one connection).
fn serve(stream: impl Read + Write, index: usize, log: &Mutex<Log>, handler: &Handler) {
    let task = TASKS[index % TASKS.len()];
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut asked_close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("connection") && value.trim() == "close" {
                    asked_close = true;
                }
            }
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or_default();
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let param = |key: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let wanted = param("task");
        let probe = param("probe").as_deref() == Some("1");
        let slot = index % TASKS.len();
        let mine = {
            let mut log = log.lock().unwrap();
            log.requests.push(Seen {
                connection: index,
                task,
                wanted: wanted.clone(),
                probe,
                hash: param("hash"),
                asked_close,
            });
            let mine = log.mine[slot];
            if !probe && wanted.as_deref().is_none_or(|w| w == task) {
                log.mine[slot] += 1;
            }
            mine
        };
        let reply = handler(&Req {
            task,
            wanted: wanted.as_deref(),
            probe,
            mine,
        });
        if !write_reply(&mut reader, reply, asked_close) || asked_close {
            return;
        }
    }
}

/// Writes the reply; false when the connection is finished (the caller then drops it, which
/// closes it).
fn write_reply<S: Read + Write>(stream: &mut BufReader<S>, reply: Reply, close: bool) -> bool {
    let connection = if close { "close" } else { "keep-alive" };
    match reply {
        Reply::Status { code, headers } => {
            let mut head = format!(
                "HTTP/1.1 {code} Stub\r\nContent-Length: 0\r\nConnection: {connection}\r\n"
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let stream = stream.get_mut();
            stream.write_all(head.as_bytes()).is_ok() && stream.flush().is_ok()
        }
        Reply::Snapshot {
            headers,
            body,
            ending,
        } => {
            let framing = if ending == Ending::CutUnframed {
                ""
            } else {
                "Transfer-Encoding: chunked\r\n"
            };
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}Connection: close\r\n"
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let (first, second) = body.split_at(body.len() / 2);
            let chunk = |data: &str| {
                if ending == Ending::CutUnframed {
                    data.to_owned()
                } else {
                    format!("{:x}\r\n{data}\r\n", data.len())
                }
            };
            // Keep-alive whitespace while "building", as the proxy sends it.
            let mut out = head;
            out.push_str(&chunk("  \n "));
            out.push_str(&chunk(first));
            let _ = stream.get_mut().write_all(out.as_bytes());
            let _ = stream.get_mut().flush();
            match ending {
                Ending::Complete => {
                    let rest = format!("{}0\r\n\r\n", chunk(second));
                    let _ = stream.get_mut().write_all(rest.as_bytes());
                    let _ = stream.get_mut().flush();
                }
                Ending::Cut | Ending::CutUnframed => {}
                Ending::Hold => {
                    // Until the client goes away (or the read timeout, should it never).
                    let _ = stream.read(&mut [0; 64]);
                }
            }
            false
        }
    }
}

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// The body task `task` sends as its `n`th snapshot.
fn snapshot_json(task: &str, n: usize) -> String {
    format!(
        r#"{{"snapshot":{{"meta":{{}},"node_count":0,"edge_count":0}},"nodes":[],"edges":[],"strings":["from {task} #{n}"]}}"#
    )
}

fn file_name(task: &str, n: usize) -> String {
    format!("{task}-20210601T1000{n:02}Z.heapsnapshot")
}

/// A snapshot answer exactly like the proxy's.
fn snapshot(task: &str, n: usize, series: &str, ending: Ending) -> Reply {
    Reply::Snapshot {
        headers: vec![
            header("X-Heapgate-Task", task),
            header("X-Heapgate-Series", series),
            header(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", file_name(task, n)),
            ),
        ],
        body: snapshot_json(task, n),
        ending,
    }
}

fn status(code: u16, task: Option<&str>) -> Reply {
    Reply::Status {
        code,
        headers: task
            .map(|task| vec![header("X-Heapgate-Task", task)])
            .unwrap_or_default(),
    }
}

/// What heapgate-proxy answers: 421 for another task, 204 to a probe, else a snapshot.
fn proxy(req: &Req<'_>) -> Reply {
    if req.wanted.is_some_and(|wanted| wanted != req.task) {
        return status(421, Some(req.task));
    }
    if req.probe {
        return status(204, Some(req.task));
    }
    snapshot(
        req.task,
        req.mine,
        &format!("series-{}", req.task),
        Ending::Complete,
    )
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn command(stub: &Stub, out: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_heapgate"));
    for var in [
        "HEAPGATE_SECRET_FILE",
        "HEAPGATE_VALUE",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HEAPGATE_SECRET", SECRET)
        .arg("fetch")
        .arg(stub.url())
        .arg("--out")
        .arg(out)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn fetch(stub: &Stub, out: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command(stub, out, args).output().unwrap();
    let run = Run {
        status: status.code().unwrap(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    for line in run.stderr.lines() {
        assert!(line.starts_with("heapgate: "), "{}", run.stderr);
        assert!(!line.contains(SECRET), "{line}");
        assert!(!line.contains("hash="), "the token leaked: {line}");
    }
    run
}

/// The files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

fn paths(dir: &Path, names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("{}\n", dir.join(name).display()))
        .collect()
}

#[test]
fn a_series_from_the_wanted_task_only() {
    let stub = Stub::start(proxy);
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t2", "--count", "2", "--interval", "1s"],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);

    let names = [file_name("t2", 0), file_name("t2", 1)];
    assert_eq!(files(dir.path()), names);
    assert_eq!(read(dir.path().join(&names[0])), snapshot_json("t2", 0));
    assert_eq!(read(dir.path().join(&names[1])), snapshot_json("t2", 1));
    assert_eq!(run.stdout, paths(dir.path(), &names));
    assert!(!run.stderr.contains("not comparable"), "{}", run.stderr);
    assert!(
        run.stderr.contains("421 Misdirected Request from task t1"),
        "{}",
        run.stderr
    );

    stub.assert_one_request_per_connection();
    let requests = stub.requests();
    // t1 421, t2 200, t3 421, t1 421, t2 200.
    let landed: Vec<_> = requests.iter().map(|seen| seen.task).collect();
    assert_eq!(landed, ["t1", "t2", "t3", "t1", "t2"]);
    for seen in &requests {
        assert_eq!(seen.wanted.as_deref(), Some("t2"), "{seen:?}");
        assert!(!seen.probe);
        let hash = seen.hash.as_deref().unwrap();
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    // The tokens are real: the same secret verifies them.
    let verify = Command::new(env!("CARGO_BIN_EXE_heapgate"))
        .env("HEAPGATE_SECRET", SECRET)
        .env_remove("HEAPGATE_SECRET_FILE")
        .env_remove("HEAPGATE_VALUE")
        .args(["verify", requests[4].hash.as_deref().unwrap()])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
}

#[test]
fn without_task_it_pins_the_first_task_that_answers() {
    let stub = Stub::start(proxy);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new").join("dir");
    let run = fetch(&stub, &out, &["--count", "2", "--interval", "0s"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        run.stderr.lines().any(|l| l == "heapgate: pinned task t1"),
        "{}",
        run.stderr
    );

    let names = [file_name("t1", 0), file_name("t1", 1)];
    assert_eq!(files(&out), names, "--out is created");
    assert_eq!(read(out.join(&names[0])), snapshot_json("t1", 0));
    assert_eq!(read(out.join(&names[1])), snapshot_json("t1", 1));
    assert_eq!(run.stdout, paths(&out, &names));

    stub.assert_one_request_per_connection();
    let requests = stub.requests();
    assert!(requests[0].probe && requests[0].wanted.is_none());
    for seen in &requests[1..] {
        assert!(!seen.probe, "{seen:?}");
        assert_eq!(seen.wanted.as_deref(), Some("t1"), "{seen:?}");
    }
}

#[test]
fn a_server_that_ignores_probes_gets_its_snapshot_kept() {
    // A server without probe and task= support: every request takes a snapshot.
    let stub = Stub::start(|req| {
        snapshot(
            req.task,
            req.mine,
            &format!("series-{}", req.task),
            Ending::Complete,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &[]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(run.stderr.contains("pinned task t1"), "{}", run.stderr);
    assert_eq!(files(dir.path()), [file_name("t1", 0)]);
    assert_eq!(stub.requests().len(), 1);
}

#[test]
fn a_task_that_never_answers_fails_after_max_attempts_and_leaves_nothing() {
    let stub = Stub::start(proxy);
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t9", "--max-attempts", "5"]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let last = last_line(&run.stderr);
    assert!(
        last.starts_with(
            "heapgate: task t9 not reached in 5 attempts (3 other tasks answered: t1, t2, t3;"
        ),
        "{last}"
    );
    assert_eq!(stub.requests().len(), 5);
    stub.assert_one_request_per_connection();
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn a_truncated_body_is_never_saved_and_is_retried() {
    for ending in [Ending::Cut, Ending::CutUnframed] {
        let stub = Stub::start(move |req| {
            if req.task == "t2" && req.mine == 0 && req.wanted == Some("t2") {
                snapshot("t2", 0, "series-t2", ending)
            } else {
                proxy(req)
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let run = fetch(&stub, dir.path(), &["--task", "t2"]);
        assert_eq!(run.status, 0, "{}", run.stderr);
        let expected = if ending == Ending::Cut {
            "task t2: transfer cut after"
        } else {
            "task t2: the snapshot ended early"
        };
        assert!(run.stderr.contains(expected), "{}", run.stderr);
        // Only the second, complete snapshot exists; the cut one left nothing behind.
        assert_eq!(files(dir.path()), [file_name("t2", 1)]);
        assert_eq!(
            read(dir.path().join(file_name("t2", 1))),
            snapshot_json("t2", 1)
        );
        assert_eq!(run.stdout, paths(dir.path(), &[file_name("t2", 1)]));
        stub.assert_one_request_per_connection();
    }
}

#[test]
fn a_body_cut_every_time_fails_clearly_and_leaves_nothing() {
    let stub = Stub::start(|req| {
        if req.wanted == Some(req.task) {
            snapshot(req.task, req.mine, "s", Ending::Cut)
        } else {
            proxy(req)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2", "--max-attempts", "5"]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert!(
        run.stderr.matches("transfer cut after").count() >= 2,
        "{}",
        run.stderr
    );
    assert!(
        last_line(&run.stderr).starts_with("heapgate: task t2 not reached in 5 attempts"),
        "{}",
        run.stderr
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let stub = Stub::start(proxy);
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join(file_name("t2", 0));
    std::fs::write(&taken, "precious").unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let numbered = "t2-20210601T100000Z-1.heapsnapshot".to_owned();
    assert_eq!(read(&taken), "precious");
    assert_eq!(read(dir.path().join(&numbered)), snapshot_json("t2", 0));
    assert_eq!(run.stdout, paths(dir.path(), &[numbered]));
}

#[test]
fn an_answer_from_another_task_is_never_saved() {
    // t1 ignores task= and sends its own snapshot (named by X-Heapgate-Task); t3 does the same
    // without X-Heapgate-Task, named only by its Content-Disposition filename.
    let stub = Stub::start(|req| match req.task {
        "t1" => snapshot("t1", req.mine, "series-t1", Ending::Complete),
        "t3" => Reply::Snapshot {
            headers: vec![header(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", file_name("t3", 0)),
            )],
            body: snapshot_json("t3", 0),
            ending: Ending::Complete,
        },
        _ => proxy(req),
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t2", "--count", "2", "--interval", "0s"],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(files(dir.path()), [file_name("t2", 0), file_name("t2", 1)]);
    for name in files(dir.path()) {
        assert!(read(dir.path().join(name)).contains("from t2 #"));
    }
    assert!(
        run.stderr.contains("200 OK from task t1, not t2; retrying"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("200 OK from task t3, not t2; retrying"),
        "{}",
        run.stderr
    );
    stub.assert_one_request_per_connection();
}

#[test]
fn answers_that_name_no_task_are_never_saved() {
    let stub = Stub::start(|req| Reply::Snapshot {
        headers: vec![],
        body: snapshot_json(req.task, 0),
        ending: Ending::Complete,
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2", "--max-attempts", "3"]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert!(
        last_line(&run.stderr)
            .starts_with("heapgate: task t2 not reached in 3 attempts (3 answers named no task;"),
        "{}",
        run.stderr
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn forbidden_stops_at_once() {
    let stub = Stub::start(|_| status(403, None));
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2"]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "heapgate: token rejected: check the secret, --value and the clocks\n"
    );
    assert_eq!(stub.requests().len(), 1);
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn a_later_failure_keeps_the_files_already_saved() {
    let stub = Stub::start(|req| {
        if req.wanted == Some(req.task) && req.mine >= 1 {
            status(403, None)
        } else {
            proxy(req)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t2", "--count", "3", "--interval", "0s"],
    );
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert_eq!(files(dir.path()), [file_name("t2", 0)]);
    assert_eq!(run.stdout, paths(dir.path(), &[file_name("t2", 0)]));
    assert_eq!(
        last_line(&run.stderr),
        "heapgate: snapshot 2 of 3: token rejected: check the secret, --value and the clocks"
    );
}

#[test]
fn busy_and_unreachable_are_waited_out() {
    let stub = Stub::start(|req| {
        if req.wanted != Some(req.task) {
            return proxy(req);
        }
        match req.mine {
            0 => Reply::Status {
                code: 429,
                headers: vec![header("X-Heapgate-Task", "t2"), header("Retry-After", "1")],
            },
            1 => status(502, Some("t2")),
            _ => proxy(req),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("429 Too Many Requests from task t2; waiting 1 s"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("502 Bad Gateway from task t2; retrying in 500 ms"),
        "{}",
        run.stderr
    );
    assert_eq!(files(dir.path()), [file_name("t2", 2)]);
    assert_eq!(
        read(dir.path().join(file_name("t2", 2))),
        snapshot_json("t2", 2)
    );
    stub.assert_one_request_per_connection();
}

#[test]
fn a_series_change_is_warned_about() {
    let stub = Stub::start(|req| {
        if req.wanted == Some(req.task) {
            let series = if req.mine == 0 { "s-a" } else { "s-b" };
            snapshot(req.task, req.mine, series, Ending::Complete)
        } else {
            proxy(req)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t2", "--count", "2", "--interval", "0s"],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "heapgate: warning: snapshots 1 and 2 are not comparable: series s-a became s-b"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(files(dir.path()).len(), 2);
}

#[test]
fn an_answer_that_is_not_a_snapshot_stops_and_leaves_nothing() {
    let stub = Stub::start(|req| {
        if req.wanted == Some(req.task) {
            Reply::Snapshot {
                headers: vec![header("X-Heapgate-Task", req.task)],
                body: "<html>welcome to the app</html>".to_owned(),
                ending: Ending::Complete,
            }
        } else {
            proxy(req)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2"]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert!(
        last_line(&run.stderr).contains("not a heap snapshot"),
        "{}",
        run.stderr
    );
    assert_eq!(stub.requests().len(), 2);
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn an_interrupted_download_leaves_nothing_and_exits_130() {
    for signal in ["TERM", "INT"] {
        let stub = Stub::start(|req| {
            if req.wanted == Some(req.task) {
                snapshot(req.task, req.mine, "s", Ending::Hold)
            } else {
                proxy(req)
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let child = command(&stub, dir.path(), &["--task", "t2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait (bounded) until the download is under way: its .part exists.
        let part = dir.path().join(format!("{}.part", file_name("t2", 0)));
        for _ in 0..600 {
            if part.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(part.exists(), "no download started");
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(130), "{signal}: {stderr}");
        assert_eq!(
            last_line(&stderr),
            format!("heapgate: interrupted by SIG{signal}; no partial file left")
        );
        assert!(output.stdout.is_empty());
        assert_eq!(files(dir.path()), Vec::<String>::new(), "{signal}");
    }
}

#[test]
fn usage_errors_exit_2_before_any_request() {
    let stub = Stub::start(proxy);
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--count", "0"][..],
        &["--max-attempts", "0"],
        &["--interval", "soon"],
        &["--path", "/heap?x"],
        &["--task", ""],
    ] {
        let output = command(&stub, dir.path(), args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
    let bad_base = Command::new(env!("CARGO_BIN_EXE_heapgate"))
        .env("HEAPGATE_SECRET", SECRET)
        .args(["fetch", "svc:8080"])
        .output()
        .unwrap();
    assert_eq!(bad_base.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_base.stderr).contains("http://"));
    assert_eq!(stub.requests().len(), 0);
}

#[test]
fn help_lists_every_flag() {
    let help = Command::new(env!("CARGO_BIN_EXE_heapgate"))
        .args(["fetch", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "BASE_URL",
        "--task",
        "--count",
        "--interval",
        "--out",
        "--path",
        "--max-attempts",
        "--keep-compressed",
        "--no-compression",
        "--secret-file",
        "--value",
    ] {
        assert!(text.contains(flag), "{flag} missing from fetch --help");
    }
}

#[test]
fn the_injected_clock_mints_every_token_and_names_unnamed_files() {
    use clap::Parser;
    // Snapshots without Content-Disposition: the file is named from the task and the clock.
    let stub = Stub::start(|req| {
        if req.wanted == Some(req.task) {
            Reply::Snapshot {
                headers: vec![header("X-Heapgate-Task", req.task)],
                body: snapshot_json(req.task, req.mine),
                ending: Ending::Complete,
            }
        } else {
            proxy(req)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let at = "2021-06-01T10:15:00Z";
    let url = stub.url();
    let cli = heapgate::Cli::try_parse_from([
        "heapgate", "fetch", &url, "--task", "t2", "--out", out, "--secret", SECRET,
    ])
    .unwrap();
    let clock = || at.parse().unwrap();
    let env = |_: &str| None;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut io = heapgate::Io {
        now: &clock,
        env: &env,
        stdout: &mut stdout,
        stderr: &mut stderr,
        stderr_is_terminal: false,
    };
    let result = heapgate::run(&cli, &mut io);
    let stderr = String::from_utf8(stderr).unwrap();
    assert!(result.is_ok(), "{result:?}: {stderr}");

    let name = ["t2-20210601T101500Z.heapsnapshot".to_owned()];
    assert_eq!(files(dir.path()), name);
    assert_eq!(String::from_utf8(stdout).unwrap(), paths(dir.path(), &name));
    let minted = Command::new(env!("CARGO_BIN_EXE_heapgate"))
        .env("HEAPGATE_SECRET", SECRET)
        .env_remove("HEAPGATE_SECRET_FILE")
        .env_remove("HEAPGATE_VALUE")
        .args(["mint", "--at", at])
        .output()
        .unwrap();
    let minted = String::from_utf8(minted.stdout).unwrap();
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    for seen in requests {
        assert_eq!(seen.hash.as_deref(), Some(minted.trim_end()), "{seen:?}");
    }
}

/// A CA, and a server configuration for `localhost` signed by it; the CA's PEM.
fn tls_server() -> (Arc<rustls::ServerConfig>, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (Arc::new(config), ca_cert.pem())
}

#[test]
fn https_works_and_checks_the_certificate() {
    let (config, ca_pem) = tls_server();
    let stub = Stub::start_with(proxy, Some(config));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let out = dir.path().join("out");

    // Trusted (SSL_CERT_FILE is where rustls-native-certs looks first).
    let output = command(&stub, &out, &["--task", "t2"])
        .env("SSL_CERT_FILE", &ca)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(files(&out), [file_name("t2", 0)]);
    assert_eq!(read(out.join(file_name("t2", 0))), snapshot_json("t2", 0));
    stub.assert_one_request_per_connection();

    // Signed by a CA the client does not trust: refused before any request is sent.
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, tls_server().1).unwrap();
    let before = stub.requests().len();
    let output = command(&stub, &out, &["--task", "t2", "--max-attempts", "2"])
        .env("SSL_CERT_FILE", &other_ca)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "refused at once, not retried: {stderr}"
    );
    assert!(
        stderr.starts_with("heapgate: the server's TLS certificate was refused"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert_eq!(stub.requests().len(), before);
    assert_eq!(files(&out), [file_name("t2", 0)]);
}

#[test]
fn html_writes_the_report_of_the_series() {
    // Real (small) snapshots of one series, with the proxy's headers.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshot/tests/data");
    let bodies = [
        read(data.join("small-base.heapsnapshot")),
        read(data.join("small-new.heapsnapshot")),
    ];
    let stub = Stub::start(move |req| {
        if req.probe {
            return status(204, Some(req.task));
        }
        let Reply::Snapshot { headers, .. } = snapshot(req.task, req.mine, "s1", Ending::Complete)
        else {
            unreachable!()
        };
        Reply::Snapshot {
            headers,
            body: bodies[req.mine.min(1)].clone(),
            ending: Ending::Complete,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let run = fetch(
        &stub,
        dir.path(),
        &[
            "--count",
            "2",
            "--interval",
            "0s",
            "--html",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);
    // stdout is still exactly the saved paths; the report is announced on stderr.
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    assert!(run.stderr.contains("wrote the report to"), "{}", run.stderr);
    let html = read(&report);
    let task = run.stdout.lines().next().unwrap();
    let task = Path::new(task).file_name().unwrap().to_str().unwrap();
    let task = task.split('-').next().unwrap();
    assert!(
        html.contains(&format!(
            "heapgate fetch {} --task {task} --count 2",
            stub.url()
        )),
        "the reproduce section names the pinned task"
    );
    assert!(html.contains("heapgate diff "), "and the diff of the files");
    assert!(!html.contains(SECRET));
    assert!(html.contains("id=\"heapgate-data\""));
}
