//! Landing on a chosen task behind a real round-robin balancer: three Node apps, each behind its
//! own `heapgate-proxy` sidecar with a distinct task id, and nginx in front of the sidecars with
//! plain round-robin and no stickiness.
//!
//! Without node or nginx these tests print a loud SKIPPED notice; under CI=true they fail.

use std::net::SocketAddr;

use heapgate_tests::{
    HttpResponse, LEAKED_CLASS, Nginx, NodeApp, ProxyProc, assert_valid_snapshot, http_get,
    nginx_or_skip, node_or_skip, object_ids, workspace_binary,
};
use heapgate_token::{Key, mint};

const SECRET: &str = "balancer-secret-0123456789abcdef";
const TASKS: [&str; 3] = ["t1", "t2", "t3"];

/// Three apps with sidecars, and nginx round-robin in front.
struct Fleet {
    nginx: Nginx,
    sidecars: Vec<ProxyProc>,
    _apps: Vec<NodeApp>,
}

fn fleet(test: &str) -> Option<Fleet> {
    let node = node_or_skip(test)?;
    let nginx = nginx_or_skip(test)?;
    let proxy = workspace_binary("heapgate-proxy");
    let apps: Vec<NodeApp> = TASKS.iter().map(|_| NodeApp::start(&node, &[])).collect();
    let sidecars: Vec<ProxyProc> = apps
        .iter()
        .zip(TASKS)
        .map(|(app, task)| {
            let upstream = format!("http://{}", app.addr());
            let inspector = format!("http://{}", app.inspector);
            ProxyProc::start(
                &proxy,
                &[
                    "--upstream",
                    &upstream,
                    "--inspector",
                    &inspector,
                    "--task-id",
                    task,
                    "--min-interval",
                    "0s",
                ],
                &[("HEAPGATE_SECRET", SECRET)],
            )
        })
        .collect();
    let backends: Vec<SocketAddr> = sidecars.iter().map(|s| s.listen).collect();
    let nginx = Nginx::start(&nginx, &backends);
    Some(Fleet {
        nginx,
        sidecars,
        _apps: apps,
    })
}

fn token() -> String {
    mint(
        &Key::new(SECRET.as_bytes()).unwrap(),
        "heapdump",
        chrono::Utc::now(),
    )
    .to_string()
}

fn gateway(upstreams: &[String], extra: &[&str]) -> ProxyProc {
    let mut args = vec!["--source", "gateway"];
    for upstream in upstreams {
        args.extend(["--upstream", upstream.as_str()]);
    }
    args.extend_from_slice(extra);
    ProxyProc::start(
        &workspace_binary("heapgate-proxy"),
        &args,
        &[("HEAPGATE_SECRET", SECRET)],
    )
}

fn snapshot(addr: SocketAddr, query: &str) -> HttpResponse {
    http_get(addr, &format!("/heapdump?hash={}{query}", token())).unwrap()
}

fn parse(response: &HttpResponse) -> serde_json::Value {
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.complete);
    let json = serde_json::from_slice(&response.body).unwrap();
    assert_valid_snapshot(&json);
    json
}

/// `heapgate_gateway_attempts` sum and count from the gateway's metrics.
fn gateway_attempts(gateway: &ProxyProc) -> (f64, f64) {
    let metrics = http_get(gateway.admin, "/metrics").unwrap().text();
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("heapgate_gateway_attempts_sum "),
        value("heapgate_gateway_attempts_count "),
    )
}

#[test]
fn nginx_spreads_requests_over_all_three_sidecars() {
    let Some(fleet) = fleet("balancer::nginx_spreads_requests") else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let probe = snapshot(fleet.nginx.addr, "&probe=1");
        assert_eq!(probe.status, 204);
        seen.insert(probe.header("x-heapgate-task").unwrap().to_owned());
    }
    assert_eq!(seen.len(), 3, "round-robin reaches every task: {seen:?}");
    assert_eq!(fleet.sidecars.len(), 3);
}

#[test]
fn gateway_returns_the_chosen_tasks_snapshot() {
    let Some(fleet) = fleet("balancer::gateway_returns_the_chosen_tasks_snapshot") else {
        return;
    };
    let gateway = gateway(&[format!("http://{}", fleet.nginx.addr)], &[]);
    for task in ["t2", "t3", "t1", "t2"] {
        let response = snapshot(gateway.listen, &format!("&task={task}"));
        parse(&response);
        assert_eq!(response.header("x-heapgate-task"), Some(task));
        let disposition = response.header("content-disposition").unwrap();
        assert!(
            disposition.contains(&format!("filename=\"{task}-")),
            "{disposition}"
        );
    }
    let (sum, count) = gateway_attempts(&gateway);
    eprintln!(
        "gateway: {:.2} attempts per snapshot on average over {count} snapshots",
        sum / count
    );
    assert_eq!(count, 4.0);
    assert!(sum >= count, "at least one attempt each");
}

#[test]
fn gateway_pins_a_task_when_none_is_named() {
    let Some(fleet) = fleet("balancer::gateway_pins_a_task_when_none_is_named") else {
        return;
    };
    let gateway = gateway(&[format!("http://{}", fleet.nginx.addr)], &[]);
    let first = snapshot(gateway.listen, "");
    let second = snapshot(gateway.listen, "");
    let pinned = first.header("x-heapgate-task").unwrap().to_owned();
    assert_eq!(
        second.header("x-heapgate-task"),
        Some(pinned.as_str()),
        "pinned to one task"
    );
    assert_eq!(
        first.header("x-heapgate-series"),
        second.header("x-heapgate-series")
    );
    let (a, b) = (
        object_ids(&parse(&first), LEAKED_CLASS),
        object_ids(&parse(&second), LEAKED_CLASS),
    );
    assert!(
        !a.is_empty() && a == b,
        "the same process: the leaked objects keep their ids"
    );

    let repinned = snapshot(gateway.listen, "&repin=1");
    assert_eq!(repinned.status, 200);
    let now_pinned = repinned.header("x-heapgate-task").unwrap().to_owned();
    let again = snapshot(gateway.listen, "&probe=1");
    assert_eq!(again.status, 204);
    assert_eq!(again.header("x-heapgate-task"), Some(now_pinned.as_str()));
}

#[test]
fn gateway_gives_up_on_a_task_that_does_not_exist() {
    let Some(fleet) = fleet("balancer::gateway_gives_up") else {
        return;
    };
    let gateway = gateway(
        &[format!("http://{}", fleet.nginx.addr)],
        &["--max-attempts", "6"],
    );
    let response = snapshot(gateway.listen, "&task=t9");
    assert_eq!(response.status, 502);
    let body = response.text();
    assert!(body.contains("task t9 not reached in 6 attempts"), "{body}");
    assert!(
        body.contains("3 other task(s) answered: t1, t2, t3"),
        "{body}"
    );
}

#[test]
fn gateway_routes_directly_with_id_url_targets() {
    let Some(fleet) = fleet("balancer::gateway_routes_directly") else {
        return;
    };
    let table: Vec<String> = fleet
        .sidecars
        .iter()
        .zip(TASKS)
        .map(|(sidecar, task)| format!("{task}={}", format_args!("http://{}", sidecar.listen)))
        .collect();
    let gateway = gateway(&table, &[]);
    let response = snapshot(gateway.listen, "&task=t3");
    parse(&response);
    assert_eq!(response.header("x-heapgate-task"), Some("t3"));
    assert_eq!(
        gateway_attempts(&gateway),
        (1.0, 1.0),
        "direct: one attempt"
    );
    assert_eq!(snapshot(gateway.listen, "&task=t9").status, 404);
}
