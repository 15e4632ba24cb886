//! `heapgate fetch` against a stub load balancer: the real binary, and an HTTP/1.1 server on
//! loopback that hands each new connection to the next of three tasks (round robin), each
//! answering like heapgate-proxy unless a test scripts otherwise.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heapgate_tests::{Answer, Body, Cmd, Part, Run, StubApp, StubRequest};

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

/// The task a connection lands on: the balancer hands each new connection to the next task.
fn task_of(connection: usize) -> &'static str {
    TASKS[connection % TASKS.len()]
}

/// Three tasks behind a round-robin balancer: the harness's stub app, answering as `handler`
/// says for the task each connection landed on.
struct Stub {
    app: StubApp,
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
        let mine = Mutex::new([0usize; 3]);
        let answer = move |request: &StubRequest| {
            let task = task_of(request.connection);
            let wanted = request.param("task");
            let probe = request.param("probe") == Some("1");
            let mine = {
                let mut mine = mine.lock().unwrap();
                let slot = &mut mine[request.connection % TASKS.len()];
                let before = *slot;
                if !probe && wanted.is_none_or(|w| w == task) {
                    *slot += 1;
                }
                before
            };
            to_answer(handler(&Req {
                task,
                wanted,
                probe,
                mine,
            }))
        };
        let tls_enabled = tls.is_some();
        let app = match tls {
            None => StubApp::start(answer),
            Some(config) => StubApp::start_wrapped(answer, move |stream: TcpStream| {
                let connection = rustls::ServerConnection::new(Arc::clone(&config)).ok()?;
                Some(Box::new(rustls::StreamOwned::new(connection, stream)))
            }),
        };
        Stub {
            app,
            tls: tls_enabled,
        }
    }

    fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.app.addr().port())
        } else {
            self.app.url()
        }
    }

    fn requests(&self) -> Vec<Seen> {
        self.app
            .requests()
            .iter()
            .map(|request| Seen {
                connection: request.connection,
                task: task_of(request.connection),
                wanted: request.param("task").map(str::to_owned),
                probe: request.param("probe") == Some("1"),
                hash: request.param("hash").map(str::to_owned),
                asked_close: request.asks_close(),
            })
            .collect()
    }

    /// Every request came on its own connection and asked the server to close it.
    fn assert_one_request_per_connection(&self) {
        let requests = self.requests();
        assert_eq!(self.app.connections(), requests.len(), "{requests:?}");
        for (i, seen) in requests.iter().enumerate() {
            assert_eq!(seen.connection, i, "{seen:?}");
            assert!(seen.asked_close, "no Connection: close: {seen:?}");
        }
    }
}

/// The wire form of a reply. A snapshot is streamed like the proxy streams it: keep-alive
/// whitespace while "building", then the body in two halves, then the close.
fn to_answer(reply: Reply) -> Answer {
    match reply {
        Reply::Status { code, headers } => headers
            .into_iter()
            .fold(Answer::status(code), |answer, (name, value)| {
                answer.header(&name, value)
            }),
        Reply::Snapshot {
            headers,
            body,
            ending,
        } => {
            let (first, second) = body.split_at(body.len() / 2);
            let mut parts = vec![
                Part::Data(b"  \n ".to_vec()),
                Part::Data(first.as_bytes().to_vec()),
            ];
            if ending == Ending::Complete {
                parts.push(Part::Data(second.as_bytes().to_vec()));
            }
            let (body, ending) = match ending {
                Ending::Complete => (Body::Chunked(parts), heapgate_tests::Ending::Complete),
                Ending::Cut => (Body::Chunked(parts), heapgate_tests::Ending::Cut),
                Ending::CutUnframed => (Body::Unframed(parts), heapgate_tests::Ending::Complete),
                Ending::Hold => (Body::Chunked(parts), heapgate_tests::Ending::Hold),
            };
            headers
                .into_iter()
                .fold(
                    Answer::status(200).header("Content-Type", "application/json"),
                    |answer, (name, value)| answer.header(&name, value),
                )
                .body(body)
                .ending(ending)
                .close()
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

/// Answers with `reply` a request that names the task it landed on, and like heapgate-proxy
/// ([`proxy`]) any other.
fn when_wanted(
    reply: impl Fn(&Req<'_>) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Req<'_>) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.wanted == Some(req.task) {
            reply(req)
        } else {
            proxy(req)
        }
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

/// `heapgate fetch` from the stub into `out`, with the secret in the environment (and nothing
/// else of the test's: see [`Cmd`]).
fn command(stub: &Stub, out: &Path, args: &[&str]) -> Cmd {
    let mut cmd = heapgate();
    cmd.arg("fetch")
        .arg(stub.url())
        .arg("--out")
        .arg(out)
        .args(args);
    cmd
}

/// `heapgate` with the secret in the environment.
fn heapgate() -> Cmd {
    let mut cmd = Cmd::heapgate();
    cmd.env("HEAPGATE_SECRET", SECRET);
    cmd
}

/// Runs `heapgate fetch` (see [`command`]) and expects exit code `code`; every line it printed
/// on stderr is its own, and none carries the secret or a token.
fn fetch(stub: &Stub, out: &Path, args: &[&str], code: i32) -> Run {
    let run = command(stub, out, args).expect_code(code);
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
        0,
    );

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
    heapgate()
        .args(["verify", requests[4].hash.as_deref().unwrap()])
        .expect_success();
}

#[test]
fn without_task_it_pins_the_first_task_that_answers() {
    let stub = Stub::start(proxy);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new").join("dir");
    let run = fetch(&stub, &out, &["--count", "2", "--interval", "0s"], 0);
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
    let run = fetch(&stub, dir.path(), &[], 0);
    assert!(run.stderr.contains("pinned task t1"), "{}", run.stderr);
    assert_eq!(files(dir.path()), [file_name("t1", 0)]);
    assert_eq!(stub.requests().len(), 1);
}

#[test]
fn a_task_that_never_answers_fails_after_max_attempts_and_leaves_nothing() {
    let stub = Stub::start(proxy);
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t9", "--max-attempts", "5"],
        1,
    );
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
        let run = fetch(&stub, dir.path(), &["--task", "t2"], 0);
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
    let stub = Stub::start(when_wanted(|req| {
        snapshot(req.task, req.mine, "s", Ending::Cut)
    }));
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t2", "--max-attempts", "5"],
        1,
    );
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
    let run = fetch(&stub, dir.path(), &["--task", "t2"], 0);
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
        0,
    );
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

/// A 200 that names no task is not a sidecar's (a wrong `--path`, or the app's own address): the
/// first one stops fetch with one line, so the token reaches that server once, never 30 times.
#[test]
fn a_200_that_names_no_task_stops_at_the_first_answer() {
    fn app_page(_: &Req<'_>) -> Reply {
        Reply::Status {
            code: 200,
            headers: vec![header("Content-Type", "text/html; charset=utf-8")],
        }
    }
    fn unnamed_snapshot(req: &Req<'_>) -> Reply {
        Reply::Snapshot {
            headers: vec![],
            body: snapshot_json(req.task, 0),
            ending: Ending::Complete,
        }
    }
    type Handler = fn(&Req<'_>) -> Reply;
    let cases: [(Handler, &[&str], &str); 3] = [
        (
            app_page,
            &["--path", "/nothere"],
            "(text/html; charset=utf-8)",
        ),
        (app_page, &["--task", "t2"], "(text/html; charset=utf-8)"),
        (unnamed_snapshot, &["--task", "t2"], "(application/json)"),
    ];
    for (reply, args, kind) in cases {
        let stub = Stub::start(reply);
        let dir = tempfile::tempdir().unwrap();
        let run = fetch(&stub, dir.path(), args, 1);
        let path = if args.contains(&"/nothere") {
            "/nothere"
        } else {
            "/heapdump"
        };
        assert_eq!(
            run.stderr,
            format!(
                "heapgate: {}{path} answered 200 OK {kind} without X-Heapgate-Task: that is not \
                 heapgate-proxy's answer; check that BASE_URL is the sidecar's (or the \
                 gateway's) address, not the app's, and that --path ({path}) is its snapshot path\n",
                stub.url()
            ),
            "{args:?}"
        );
        assert_eq!(
            stub.requests().len(),
            1,
            "{args:?}: the token was sent again"
        );
        assert_eq!(files(dir.path()), Vec::<String>::new());
    }
}

#[test]
fn forbidden_stops_at_once() {
    let stub = Stub::start(|_| status(403, None));
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2"], 1);
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
        1,
    );
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
    let run = fetch(&stub, dir.path(), &["--task", "t2"], 0);
    assert!(
        run.stderr
            .contains("429 Too Many Requests from task t2; waiting 1 s"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("502 Bad Gateway from task t2; retrying in 250 ms"),
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

/// `--interval` is the time between the starts of the snapshots themselves: a first attempt
/// that met 429 and waited does not shorten the gap to the next one.
#[test]
fn the_interval_counts_from_the_snapshot_that_was_taken() {
    let taken = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&taken);
    let stub = Stub::start(move |req| {
        if req.wanted != Some(req.task) {
            return proxy(req);
        }
        if req.mine == 0 {
            return Reply::Status {
                code: 429,
                headers: vec![header("X-Heapgate-Task", "t2"), header("Retry-After", "1")],
            };
        }
        seen.lock().unwrap().push(std::time::Instant::now());
        snapshot(req.task, req.mine, "s", Ending::Complete)
    });
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t2", "--count", "2", "--interval", "2s"],
        0,
    );
    let taken = taken.lock().unwrap();
    assert_eq!(taken.len(), 2, "{}", run.stderr);
    let gap = taken[1] - taken[0];
    assert!(gap >= Duration::from_secs(2), "{gap:?}\n{}", run.stderr);
}

#[test]
fn a_series_change_is_warned_about() {
    let stub = Stub::start(when_wanted(|req| {
        let series = if req.mine == 0 { "s-a" } else { "s-b" };
        snapshot(req.task, req.mine, series, Ending::Complete)
    }));
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(
        &stub,
        dir.path(),
        &["--task", "t2", "--count", "2", "--interval", "0s"],
        0,
    );
    assert!(
        run.stderr.contains(
            "heapgate: warning: snapshots 1 and 2 are not comparable: inspector session s-a became s-b"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(files(dir.path()).len(), 2);
}

#[test]
fn an_answer_that_is_not_a_snapshot_stops_and_leaves_nothing() {
    let stub = Stub::start(when_wanted(|req| Reply::Snapshot {
        headers: vec![header("X-Heapgate-Task", req.task)],
        body: "<html>welcome to the app</html>".to_owned(),
        ending: Ending::Complete,
    }));
    let dir = tempfile::tempdir().unwrap();
    let run = fetch(&stub, dir.path(), &["--task", "t2"], 1);
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
        let stub = Stub::start(when_wanted(|req| {
            snapshot(req.task, req.mine, "s", Ending::Hold)
        }));
        let dir = tempfile::tempdir().unwrap();
        let child = command(&stub, dir.path(), &["--task", "t2"])
            .command()
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
        let run = command(&stub, dir.path(), args).run();
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
    }
    let bad_base = heapgate().args(["fetch", "svc:8080"]).expect_code(2);
    assert!(bad_base.stderr.contains("http://"));
    assert_eq!(stub.requests().len(), 0);
}

#[test]
fn help_lists_every_flag() {
    let text = Cmd::heapgate()
        .args(["fetch", "--help"])
        .expect_success()
        .stdout;
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
    let stub = Stub::start(when_wanted(|req| Reply::Snapshot {
        headers: vec![header("X-Heapgate-Task", req.task)],
        body: snapshot_json(req.task, req.mine),
        ending: Ending::Complete,
    }));
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
    let minted = heapgate()
        .args(["mint", "--at", at])
        .expect_success()
        .stdout;
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
        .run();
    let stderr = output.stderr;
    assert_eq!(output.code, 0, "{stderr}");
    assert_eq!(files(&out), [file_name("t2", 0)]);
    assert_eq!(read(out.join(file_name("t2", 0))), snapshot_json("t2", 0));
    stub.assert_one_request_per_connection();

    // Signed by a CA the client does not trust: refused before any request is sent.
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, tls_server().1).unwrap();
    let before = stub.requests().len();
    let output = command(&stub, &out, &["--task", "t2", "--max-attempts", "2"])
        .env("SSL_CERT_FILE", &other_ca)
        .run();
    let stderr = output.stderr;
    assert_eq!(output.code, 1, "{stderr}");
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
        0,
    );
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

/// One mode rule for what heapgate writes: a snapshot holds the app's secrets, so fetched and
/// redacted snapshots are the owner's alone (0600); a report is meant to be shared and gets the
/// mode of any new file (0666 less the umask).
#[test]
fn snapshots_are_private_and_reports_shared() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let umask = read("/proc/self/status")
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .map(|octal| u32::from_str_radix(octal.trim(), 8).unwrap())
        .unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshot/tests/data");
    let body = read(data.join("small-base.heapsnapshot"));
    let stub = Stub::start(move |req| match proxy(req) {
        Reply::Snapshot {
            headers, ending, ..
        } => Reply::Snapshot {
            headers,
            body: body.clone(),
            ending,
        },
        other => other,
    });
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let run = fetch(&stub, dir.path(), &["--html", report.to_str().unwrap()], 0);
    let snapshot = Path::new(run.stdout.trim_end());
    assert_eq!(mode(snapshot), 0o600, "{}", snapshot.display());
    assert_eq!(mode(&report), 0o666 & !umask);

    let redacted = dir.path().join("redacted.heapsnapshot");
    heapgate()
        .arg("redact")
        .arg(snapshot)
        .arg(&redacted)
        .expect_success();
    assert_eq!(mode(&redacted), 0o600);
    let summary = dir.path().join("summary.html");
    heapgate()
        .arg("summary")
        .arg(&redacted)
        .arg("--html")
        .arg(&summary)
        .expect_success();
    assert_eq!(mode(&summary), 0o666 & !umask);
}
