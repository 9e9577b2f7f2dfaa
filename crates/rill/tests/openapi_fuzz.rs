//! The OpenAPI description is the truth: schemathesis generates requests from
//! `/v1/openapi.json` (valid and invalid ones, and sequences of them) against a real
//! `rill run` and runs every one of its checks (status codes and bodies as documented, valid
//! input accepted, invalid input refused, no server errors). Its configuration, with the two
//! documented exceptions, is `tests/api/schemathesis.toml`.
//!
//! scripts/test.sh installs schemathesis into /opt/rill-tools and sets `RILL_SCHEMATHESIS` to
//! it and `RILL_REQUIRE_SCHEMATHESIS=1`; without them the test looks for `schemathesis` on the
//! PATH and is skipped, loudly, when there is none.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Rill, data_dir};

fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RILL_SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    let on_path = Command::new("schemathesis").arg("--version").output();
    on_path
        .is_ok_and(|output| output.status.success())
        .then(|| PathBuf::from("schemathesis"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_openapi_description_does_not_say() {
    let Some(tool) = schemathesis() else {
        assert!(
            std::env::var_os("RILL_REQUIRE_SCHEMATHESIS").is_none(),
            "schemathesis is required here but was not found (RILL_SCHEMATHESIS, PATH)"
        );
        eprintln!("SKIPPED: schemathesis is not installed (scripts/test.sh installs it)");
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let rill = Rill::start(&data_dir(&root, "data"), &[]).await;
    let config =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/api/schemathesis.toml");
    let url = rill.url("/v1/openapi.json");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&tool)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &url, "--checks", "all", "--max-examples", "100"])
            // The API's one DELETE is the schema registry's, of a subject; registering under
            // it again (`POST /subjects/{subject}/versions`, a path below the deleted one)
            // brings the subject back, which this check does not count as re-creating it.
            .args(["--exclude-checks", "use_after_free"])
            // A fixed seed: a run in CI and its rerun on a laptop generate the same requests.
            .args(["--seed", "20261203", "--no-color"])
            .output()
    })
    .await
    .expect("join")
    .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found mismatches:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
    rill.stop();
}
