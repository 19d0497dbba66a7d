//! Helpers shared by the tests that run `tickflow` as a process and stop it.

use std::io::BufRead;
use std::process::{Child, Command};

/// Sends SIGTERM to `child`, as Kubernetes stops a pod.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {}: {status}", child.id());
}

/// Reads lines from `from` (a run's stderr) until one satisfies `done`; fails, naming `what`
/// and what was read, if the stream ends first. Returns the lines read.
pub fn read_until(from: &mut impl BufRead, done: impl Fn(&str) -> bool, what: &str) -> String {
    let mut log = String::new();
    loop {
        let mut line = String::new();
        let n = from.read_line(&mut line).unwrap();
        assert!(n > 0, "the run ended before {what}: {log}");
        log.push_str(&line);
        if done(&line) {
            return log;
        }
    }
}
