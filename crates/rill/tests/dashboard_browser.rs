//! The dashboard in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/dashboard.mjs`) against a real `rill run`: the page loads, the topology
//! picture shows the five services, an order placed through the form shows up VALIDATED in the
//! live list (server-sent events), and a screenshot is saved as `target/dashboard.png`.
//!
//! scripts/test.sh installs Chromium and the script's npm packages and sets
//! `RILL_REQUIRE_BROWSER=1`; without it, a machine lacking either skips the test loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Rill, data_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_in_the_dashboard_shows_up_validated_in_a_real_browser() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script_dir = workspace.join("tests/browser");
    let chromium = std::env::var_os("RILL_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let missing: Vec<&str> = [
        (!chromium.exists()).then_some("Chromium (/usr/bin/chromium or RILL_CHROMIUM)"),
        (!script_dir.join("node_modules/playwright-core").exists())
            .then_some("playwright-core (npm ci in tests/browser)"),
        Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("node"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("RILL_REQUIRE_BROWSER").is_none(),
            "the browser test needs {} (scripts/test.sh installs them)",
            missing.join(", ")
        );
        eprintln!("SKIPPED: missing {}", missing.join(", "));
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let rill = Rill::start(&data_dir(&root, "data"), &[]).await;
    let screenshot = workspace.join("target/dashboard.png");
    let url = rill.url("/");
    let run = {
        let screenshot = screenshot.clone();
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .current_dir(&script_dir)
                .arg("dashboard.mjs")
                .arg(&url)
                .arg(&screenshot)
                .env("RILL_CHROMIUM", &chromium)
                .output()
        })
    };
    let output = run.await.expect("join").expect("run node");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "browser test failed:\n{report}");
    assert!(report.contains("VALIDATED in the live list"), "{report}");
    assert!(
        is_png(&screenshot),
        "no screenshot at {}",
        screenshot.display()
    );
    rill.stop();
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG"))
}
