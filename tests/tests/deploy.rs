//! The deploy artifacts parse, and what they configure exists: every HEAPGATE_* variable is one
//! the proxy reads, ports line up with the listen addresses, and the drain fits the stop timeout.

use std::collections::BTreeSet;

use heapgate_tests::{Cmd, repo_root};
use yaml_rust2::{Yaml, YamlLoader};

/// Environment variables `heapgate-proxy --help` documents.
fn proxy_env_vars() -> BTreeSet<String> {
    let help = Cmd::proxy().arg("--help").expect_success().stdout;
    let mut vars: BTreeSet<String> = help
        .match_indices("[env: ")
        .map(|(i, _)| {
            help[i + 6..]
                .split(['=', ']'])
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        help.contains("HEAPGATE_SECRET"),
        "the secret's variable is documented"
    );
    vars.insert("HEAPGATE_SECRET".to_owned());
    vars
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap()
}

fn port_of(listen: &str) -> i64 {
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

fn seconds(duration: &str) -> i64 {
    duration.trim_end_matches('s').parse().unwrap()
}

#[test]
fn ecs_task_definition_matches_the_proxy() {
    let known = proxy_env_vars();
    let task: serde_json::Value =
        serde_json::from_str(&read("deploy/ecs-task-definition.json")).unwrap();
    let containers = task["containerDefinitions"].as_array().unwrap();
    let by_name = |name: &str| containers.iter().find(|c| c["name"] == name).unwrap();
    let (app, proxy) = (by_name("app"), by_name("heapgate-proxy"));

    let env = |c: &serde_json::Value, name: &str| {
        c["environment"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_owned())
    };
    for e in proxy["environment"]
        .as_array()
        .unwrap()
        .iter()
        .chain(proxy["secrets"].as_array().unwrap())
    {
        let name = e["name"].as_str().unwrap();
        assert!(
            known.contains(name),
            "{name} is not a heapgate-proxy variable"
        );
    }
    assert_eq!(proxy["secrets"][0]["name"], "HEAPGATE_SECRET");
    assert!(
        proxy["secrets"][0]["valueFrom"]
            .as_str()
            .unwrap()
            .contains(":secretsmanager:")
    );

    let listen = env(proxy, "HEAPGATE_LISTEN").unwrap();
    assert_eq!(
        proxy["portMappings"][0]["containerPort"].as_i64(),
        Some(port_of(&listen))
    );
    let inspector = env(proxy, "HEAPGATE_INSPECTOR").unwrap();
    let node_options = env(app, "NODE_OPTIONS").unwrap();
    assert_eq!(
        node_options,
        format!("--inspect={}", inspector.trim_start_matches("http://"))
    );
    assert!(
        inspector.starts_with("http://127.0.0.1:"),
        "inspector on loopback only"
    );
    let upstream = env(proxy, "HEAPGATE_UPSTREAM").unwrap();
    assert_eq!(
        env(app, "PORT").map(|p| p.parse::<i64>().unwrap()),
        Some(port_of(&upstream))
    );

    let health = env(proxy, "HEAPGATE_HEALTH_PATH").unwrap();
    let check = app["healthCheck"]["command"][1].as_str().unwrap();
    assert!(
        check.contains(&format!("127.0.0.1:{}{health}", port_of(&listen))),
        "health check through the proxy"
    );
    let drain = seconds(&env(proxy, "HEAPGATE_SHUTDOWN_TIMEOUT").unwrap());
    assert!(
        proxy["stopTimeout"].as_i64().unwrap() > drain,
        "the drain fits the stop timeout"
    );
}

#[test]
fn kubernetes_manifest_matches_the_proxy() {
    let known = proxy_env_vars();
    let docs = YamlLoader::load_from_str(&read("deploy/k8s.yaml")).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Secret", "Deployment", "Service"]);
    let pod = &docs[1]["spec"]["template"]["spec"];
    let containers = pod["containers"].as_vec().unwrap();
    let proxy = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("heapgate-proxy"))
        .unwrap();
    let app = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("app"))
        .unwrap();

    let env = |c: &Yaml, name: &str| {
        c["env"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    };
    for e in proxy["env"].as_vec().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(
            known.contains(name),
            "{name} is not a heapgate-proxy variable"
        );
    }
    let listen = port_of(&env(proxy, "HEAPGATE_LISTEN").unwrap());
    let admin = port_of(&env(proxy, "HEAPGATE_ADMIN_LISTEN").unwrap());
    let port = |name: &str| {
        proxy["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
    };
    assert_eq!((port("http"), port("admin")), (Some(listen), Some(admin)));
    assert_eq!(
        proxy["readinessProbe"]["httpGet"]["port"].as_i64(),
        Some(admin)
    );
    assert_eq!(
        proxy["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        docs[2]["spec"]["ports"][0]["targetPort"].as_i64(),
        Some(listen)
    );
    assert_eq!(
        app["livenessProbe"]["httpGet"]["port"].as_i64(),
        Some(listen),
        "app health through the proxy"
    );
    assert_eq!(
        app["livenessProbe"]["httpGet"]["path"].as_str(),
        env(proxy, "HEAPGATE_HEALTH_PATH").as_deref()
    );
    let drain = seconds(&env(proxy, "HEAPGATE_SHUTDOWN_TIMEOUT").unwrap());
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > drain);
    let secret_ref = proxy["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("HEAPGATE_SECRET"))
        .map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
        .unwrap();
    assert_eq!(secret_ref, docs[0]["metadata"]["name"].as_str());
}

#[test]
fn dockerfile_runs_the_proxy_as_non_root() {
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile.contains("FROM rust:") && dockerfile.contains(" AS build"),
        "multi-stage"
    );
    assert!(dockerfile.contains("-p heapgate-proxy"));
    let entrypoint = dockerfile
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .unwrap();
    assert!(entrypoint.contains("heapgate-proxy"));
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .unwrap();
    assert!(
        !user.contains("root:") || user.contains("nonroot"),
        "{user}"
    );
    assert!(dockerfile.contains("EXPOSE 8080 9091"));
}
