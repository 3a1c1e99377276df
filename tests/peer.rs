//! The peer comparison at small size: `tests/benches/splink/compare.sh`
//! generates data, runs a full refresh and Splink's deterministic linking on
//! DuckDB with the same rules, and compares the two partitions of the source
//! records. The test command installs Splink first (`compare.sh --setup`);
//! the large runs and their timings are in BENCHMARKS.md.

use crate::support;

use std::process::Command;

use support::{root, tempdir, triggerfish_bin};

/// Rows generated: enough for every rule to link records across sources.
const ROWS: &str = "4000";

#[test]
fn splink_finds_the_same_customers_as_a_full_refresh() {
    let work = tempdir();
    let out = Command::new("bash")
        .arg(root().join("tests/benches/splink/compare.sh"))
        .arg(ROWS)
        .env("TRIGGERFISH", triggerfish_bin())
        .env("WORK", work.path())
        .env("RUNS", "1")
        .output()
        .expect("run compare.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "compare.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let clusters = stdout
        .lines()
        .find(|l| l.starts_with("Clusters: "))
        .unwrap_or_else(|| panic!("no clusters line in:\n{stdout}"));
    assert!(
        clusters.ends_with("**identical partitions**."),
        "{clusters}"
    );
    // "Clusters: Triggerfish N (M of two or more records, 4,000 records), …"
    let merged: u64 = clusters
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once(" of two or more"))
        .and_then(|(n, _)| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no merged count in {clusters}"));
    assert!(
        merged > 100,
        "too few records linked to compare: {clusters}"
    );
    assert!(clusters.contains("4,000 records), Splink"), "{clusters}");
}
