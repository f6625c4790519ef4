//! Admin → Update in real headless Chromium at phone width (360 px): upload
//! a signed bundle and watch the progress, read its manifest, install it,
//! see Hearth restart into it; and an upload signed with a key this Hearth
//! does not trust, refused in one sentence with nothing staged.

use std::time::Duration;

use fantoccini::Locator;

use crate::browser::{Driver, appears, arrive, assert_fits, click, fill, shot, text, text_of};
use crate::bundles::DevKey;
use crate::util::{TestServer, eventually_async};

#[tokio::test]
async fn upload_check_install_and_restart_at_360_px() {
    let key = DevKey::new();
    let stranger = DevKey::new();
    let mut server = TestServer::start_configured(&[], &key.config(), &[]);
    let bundles = tempfile::tempdir().unwrap();
    let good = key.hearth_bundle("0.2.0", bundles.path());
    let untrusted = stranger.hearth_bundle("0.3.0", bundles.path());
    let driver = Driver::start();
    let b = driver.browser(360, 740).await;
    let url = server.url.clone();

    b.goto(&format!("{url}/setup")).await.unwrap();
    fill(&b, "#password", "a very good password").await;
    fill(&b, "#confirm", "a very good password").await;
    click(&b, "form button[type=submit]").await;
    arrive(&b, "/admin").await;

    // The page: the running version and the upload form.
    click(&b, "nav a[href='/admin/update']").await;
    arrive(&b, "/admin/update").await;
    assert!(
        text(&b).await.contains("Hearth 0.1.0"),
        "{}",
        text(&b).await
    );
    assert_fits(&b, "update page").await;
    shot(&b, "phone-360-update-1-page").await;

    // An update signed with a key this Hearth does not trust: refused.
    upload(&b, &untrusted).await;
    let error = text_of(&b, "#update-error").await;
    assert!(
        error.contains("signed with a key this Hearth does not trust"),
        "{error}"
    );
    assert!(
        b.find(Locator::Css("#update-staged")).await.is_err(),
        "nothing staged"
    );
    assert!(!server.data_dir().join("update/staged").exists());
    let update = server.data_dir().join("update");
    let leftovers: Vec<_> = [update.clone(), update.join("slots")]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload-") || n.starts_with(".staging-"))
        .collect();
    assert!(leftovers.is_empty(), "upload deleted: {leftovers:?}");
    assert_fits(&b, "refused update").await;
    shot(&b, "phone-360-update-2-refused").await;

    // The good one: the upload's progress shows, then the manifest.
    b.goto(&format!("{url}/admin/update")).await.unwrap();
    upload(&b, &good).await;
    appears(&b, "#update-staged").await;
    let staged = text_of(&b, "#update-staged").await;
    assert!(staged.contains("Hearth 0.2.0"), "{staged}");
    assert!(staged.contains("Signed by the extra key"), "{staged}");
    assert_eq!(text_of(&b, "#update-notes").await, "Hearth 0.2.0");
    assert_fits(&b, "staged update").await;
    shot(&b, "phone-360-update-3-staged").await;

    // Install: the page says it restarts; the process stops with 75 and,
    // started again on the same port as systemd would, runs 0.2.0.
    click(&b, "#update-install").await;
    let restarting = text_of(&b, "#restart-text").await;
    assert!(restarting.contains("Restarting into 0.2.0"), "{restarting}");
    shot(&b, "phone-360-update-4-restarting").await;
    let status = server.respawn_after_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(75), "{}", server.log());
    assert_eq!(server.url, url, "same address after the restart");
    eventually_async(
        Duration::from_secs(30),
        "the page to see 0.2.0 running",
        async || {
            let now = text_of(&b, "#restart-text").await;
            if now.contains("Hearth 0.2.0 is running") {
                Ok(())
            } else {
                Err(now)
            }
        },
    )
    .await;
    let health = reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(health.trim(), "ok 0.2.0");
    b.goto(&format!("{url}/admin/update")).await.unwrap();
    let page = text(&b).await;
    assert!(
        page.contains("Hearth 0.2.0 was installed over 0.1.0"),
        "{page}"
    );
    assert_fits(&b, "after the update").await;
    shot(&b, "phone-360-update-5-installed").await;
}

/// Chooses `file` in the form and submits it, waits for the check's end,
/// and asserts that the progress line showed the upload's percentage up to
/// 100 and then the check.
async fn upload(b: &fantoccini::Client, file: &std::path::Path) {
    appears(b, "#update-file").await;
    // Record every text the progress line shows, however fast it changes,
    // in the tab's session storage, which outlives the reload that ends
    // the check.
    b.execute(
        "sessionStorage.setItem('seen', '[]');
         const t = document.getElementById('update-percent');
         new MutationObserver(() => {
           const seen = JSON.parse(sessionStorage.getItem('seen'));
           seen.push(t.textContent);
           sessionStorage.setItem('seen', JSON.stringify(seen));
         }).observe(t, {childList: true, characterData: true, subtree: true});",
        vec![],
    )
    .await
    .unwrap();
    b.find(Locator::Css("#update-file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    click(b, "#update-form button[type=submit]").await;
    // The check ends in a reload of the page: staged, or refused.
    eventually_async(Duration::from_secs(60), "the check to finish", async || {
        let staged = b.find(Locator::Css("#update-staged")).await.is_ok();
        let refused = b.find(Locator::Css("#update-error")).await.is_ok();
        if staged || refused {
            Ok(())
        } else {
            Err("still checking")
        }
    })
    .await;
    // The bar went through the upload to its end, then the check.
    let seen = b
        .execute("return JSON.parse(sessionStorage.getItem('seen'));", vec![])
        .await
        .unwrap();
    println!("progress texts seen: {seen}");
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    for want in ["Uploading… 0%", "Uploading… 100%", "Checking… "] {
        assert!(
            seen.iter().any(|s| s.starts_with(want)),
            "{want:?} never shown; seen {seen:?}"
        );
    }
}
