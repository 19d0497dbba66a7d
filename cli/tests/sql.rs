//! SQL from the command line: `[[query]]` in a pipeline file, `tickflow validate` on queries,
//! and `tickflow sql` against a running job's Flight SQL endpoint.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tickflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickflow"))
}

const PIPELINE: &str = r#"
[pipeline]
name = "cli-sql"

[[source]]
kind = "synthetic"
instruments = 2
duration = "10m"

[[operator]]
name = "bars"
kind = "time_bars"
input = "trades"
interval = "1m"

[[query]]
name = "ohlcv_5m"
sink = "jsonl"
sql = """
SELECT symbol, window_start, count(*) AS trades, max(price) AS high, min(price) AS low
FROM tumble('trades', 'ts_event', INTERVAL '5 minutes')
GROUP BY symbol, window_start
"""
"#;

#[test]
fn a_pipeline_query_writes_its_results_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, PIPELINE).unwrap();
    let out = tickflow()
        .args(["run", "-q", "-o"])
        .arg(dir.path().join("out"))
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("query ohlcv_5m:"), "{stdout}");
    assert!(stdout.contains("4 rows out, 0 late rows"), "{stdout}");
    let text = std::fs::read_to_string(dir.path().join("out/ohlcv_5m.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 4, "2 symbols x 2 windows:\n{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["trades"].as_i64().unwrap() > 0, "{v}");
    }
}

#[test]
fn validate_refuses_a_query_that_does_not_plan_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = PIPELINE.replace(
        "GROUP BY symbol, window_start",
        "GROUP BY symbol, window_start HAVING",
    );
    std::fs::write(&path, text).unwrap();
    let out = tickflow().arg("validate").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: query ohlcv_5m:"), "{err}");
    assert!(err.contains("Expected: an expression"), "{err}");

    std::fs::write(&path, PIPELINE.replace("tumble('trades'", "tumble('trade'")).unwrap();
    let out = tickflow().arg("run").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no stream named trade"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tickflow_sql_queries_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, PIPELINE).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut job = tickflow()
        .args([
            "run",
            "-q",
            "--sql-linger",
            "60",
            "--sql-listen",
            &addr,
            "-o",
        ])
        .arg(dir.path().join("out"))
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The job ends quickly and then keeps answering; ask until the answer is complete.
    let t0 = Instant::now();
    let table = loop {
        let out = tickflow()
            .args(["sql", "--connect", &addr])
            .arg("SELECT symbol, count(*) AS bars FROM bars GROUP BY symbol ORDER BY symbol")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && stdout.contains("| 10   |") {
            break stdout;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no answer: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        table.contains("| SYN00  | 10   |") && table.contains("| SYN01  | 10   |"),
        "{table}"
    );

    let out = tickflow()
        .args(["sql", "--connect", &addr, "SELECT nothing FROM bars"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing"), "{err}");
    let _ = job.kill();
    let _ = job.wait();

    let out = tickflow()
        .args([
            "sql",
            "--connect",
            &format!("127.0.0.1:{}", free_port()),
            "SELECT 1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}
