//! Nothing a test starts outlives it: a child's own children die with it, nginx's workers
//! included, also when the test panics.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use heapgate_tests::{Nginx, Proc, group_members, nginx_or_skip};

/// Waits until process group `pgid` is empty; the members still alive after 5 s.
fn group_gone(pgid: u32) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = group_members(pgid);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn grandchildren_die_with_the_child() {
    let proc =
        Proc::spawn(Command::new("sh").args(["-c", "sleep 300 & sleep 300 & echo started; wait"]));
    proc.wait_for("the shell's children", |line| {
        (line == "out started").then_some(())
    });
    let pgid = proc.pid();
    assert_eq!(group_members(pgid).len(), 3, "sh and two sleeps");
    drop(proc);
    assert_eq!(group_gone(pgid), Vec::<u32>::new(), "left running");
}

#[test]
fn a_panicking_test_still_stops_its_processes() {
    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = std::thread::spawn(move || {
        let proc = Proc::spawn(Command::new("sh").args(["-c", "sleep 300 & wait"]));
        tx.send(proc.pid()).unwrap();
        panic!("a failing assertion");
    })
    .join();
    assert!(panicked.is_err());
    let pgid = rx.recv().unwrap();
    assert_eq!(group_gone(pgid), Vec::<u32>::new(), "left running");
}

#[test]
fn nginx_workers_stop_with_nginx() {
    let Some(nginx) = nginx_or_skip("processes::nginx_workers_stop_with_nginx") else {
        return;
    };
    // A backend nginx never needs to reach: only its processes matter here.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let backends: Vec<SocketAddr> = vec![backend.local_addr().unwrap()];
    let nginx = Nginx::start(&nginx, &backends);
    let master = nginx.proc.pid();
    // nginx answers on its port before its master has always forked the worker.
    let forked = Instant::now() + Duration::from_secs(5);
    while group_members(master).len() < 2 && Instant::now() < forked {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        group_members(master).len() >= 2,
        "a master and a worker: {:?}",
        group_members(master)
    );
    drop(nginx);
    assert_eq!(group_gone(master), Vec::<u32>::new(), "nginx left running");
}
