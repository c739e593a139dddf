//! The web UI in a real browser: headless Chromium (Debian's) driven by playwright-core, against
//! the real stack. Screenshots land in `artifacts/`.

use tunix_e2e::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_uploads_lists_opens_and_deletes_a_trace() {
    let stack = Stack::start(StackOptions::default()).await;
    let browser_dir = tunix_testkit::repo_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run ./infra/test.sh (it runs npm ci in tests/browser)"
    );
    let shots = tunix_testkit::artifacts_dir();
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("ui.mjs"))
        .arg(format!("http://{}", stack.api_addr))
        .arg(&shots)
        .current_dir(&browser_dir)
        .output()
        .await
        .expect("run node (./infra/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}\nscreenshots in {}",
        shots.display()
    );
    assert!(
        stdout.contains("ok: uploaded, listed, opened and deleted"),
        "{stdout}"
    );
    for shot in [
        "ui-detail.png",
        "view-reader-1280x800.png",
        "view-run-1920x1080.png",
    ] {
        assert!(shots.join(shot).exists(), "screenshot {shot} saved");
    }
}

/// The UI's modules have unit tests of their own (`node --test`): the Markdown reader, search
/// highlighting.
#[test]
fn the_ui_modules_pass_their_unit_tests() {
    let ui = tunix_testkit::repo_root().join("ingest-api/ui");
    let out = std::process::Command::new("node")
        .args(["--test", "tests/"])
        .current_dir(&ui)
        .output()
        .expect("run node (./infra/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "{stdout}"
    );
}
