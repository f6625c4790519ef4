//! Backups in real headless Chromium at phone width: set up, upload a file
//! through the Files page, see it in a snapshot, download it back and
//! compare, then restore the snapshot elsewhere and watch the progress.

use std::time::Duration;

use fantoccini::Locator;

use crate::browser::{Driver, appears, arrive, assert_fits, click, fill, shot, submit, text};
use crate::lab::noise;
use crate::util::{TestServer, eventually_async};

#[tokio::test]
async fn upload_backup_download_and_restore_in_chromium() {
    let server = TestServer::start();
    let downloads = server.dir.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let driver = Driver::start();
    let b = driver.browser_saving_to(360, 780, Some(&downloads)).await;
    let url = &server.url;

    b.goto(&format!("{url}/setup")).await.unwrap();
    fill(&b, "#password", "a very good password").await;
    fill(&b, "#confirm", "a very good password").await;
    click(&b, "form button[type=submit]").await;
    arrive(&b, "/admin").await;

    // Set up backups with a recovery passphrase.
    b.goto(&format!("{url}/admin/backups")).await.unwrap();
    assert!(text(&b).await.contains("recovery passphrase"));
    assert_fits(&b, "backups set-up").await;
    shot(&b, "phone-360-5-backups-setup").await;
    fill(&b, "#passphrase", "a long recovery passphrase").await;
    fill(&b, "#confirm", "a long recovery passphrase").await;
    click(&b, "#init button[type=submit]").await;
    appears(&b, ".notice").await;
    assert!(text(&b).await.contains("Backups are set up"));

    // Upload through the Files page; the script shows a bar per file.
    let photo = noise(5 << 20, 7);
    let local = server.dir.path().join("beach photo.jpg");
    std::fs::write(&local, &photo).unwrap();
    b.goto(&format!("{url}/admin/files")).await.unwrap();
    assert_fits(&b, "files").await;
    b.find(Locator::Css("#file-input"))
        .await
        .unwrap()
        .send_keys(local.to_str().unwrap())
        .await
        .unwrap();
    click(&b, "#upload-form button[type=submit]").await;
    appears(&b, ".notice").await;
    assert!(
        text(&b).await.contains("1 file uploaded"),
        "{}",
        text(&b).await
    );
    assert!(text(&b).await.contains("beach photo.jpg"));
    shot(&b, "phone-360-6-files-uploaded").await;

    // It appears in a snapshot (the watcher or "Back up now").
    b.goto(&format!("{url}/admin/backups")).await.unwrap();
    click(&b, "#run-now").await;
    let what = "a snapshot with the upload";
    eventually_async(Duration::from_secs(60), what, async || {
        b.goto(&format!("{url}/admin/backups")).await.unwrap();
        let Ok(link) = b.find(Locator::Css("#snapshots tbody a")).await else {
            return Err("no snapshot yet".to_string());
        };
        link.click().await.unwrap();
        appears(&b, "main h1").await;
        let page = text(&b).await;
        if page.contains("beach photo.jpg") {
            Ok(())
        } else {
            Err(page)
        }
    })
    .await;
    assert_fits(&b, "snapshot browser").await;
    shot(&b, "phone-360-7-snapshot").await;

    // Download it back: the same bytes.
    b.find(Locator::LinkText("beach photo.jpg"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let saved = downloads.join("beach photo.jpg");
    let what = "the download to finish";
    eventually_async(
        Duration::from_secs(30),
        what,
        async || match std::fs::metadata(&saved) {
            Ok(m) if m.len() == photo.len() as u64 => Ok(()),
            Ok(m) => Err(format!("{} of {} bytes", m.len(), photo.len())),
            Err(e) => Err(format!("{}: {e}", saved.display())),
        },
    )
    .await;
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        photo,
        "downloaded copy is identical"
    );

    // Restore the whole snapshot elsewhere and follow the progress page.
    let target = server.dir.path().join("restored");
    click(&b, "#restore input[value=elsewhere]").await;
    fill(&b, "#restore input[name=target]", target.to_str().unwrap()).await;
    click(&b, "#restore-start").await;
    appears(&b, "#restore-progress").await;
    eventually_async(
        Duration::from_secs(30),
        "the restore to finish",
        async || {
            let page = text(&b).await;
            if page.contains("Done:") {
                Ok(())
            } else {
                Err(page)
            }
        },
    )
    .await;
    let value = b
        .execute(
            "return document.getElementById('restore-progress').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(value, serde_json::json!(100));
    shot(&b, "phone-360-8-restore-done").await;
    assert_eq!(
        std::fs::read(target.join("beach photo.jpg")).unwrap(),
        photo
    );
    b.close().await.unwrap();
}

/// Admin → Backups → Where backups go at phone width, against a real
/// three-node Garage cluster: a wrong key fails the test with the reason,
/// the right one passes, and Save keeps the secret out of the page.
#[tokio::test]
async fn s3_target_is_tested_and_saved_in_chromium() {
    let g = crate::garage::Garage::start();
    let server = TestServer::start();
    let driver = Driver::start();
    let b = driver.browser(360, 780).await;
    let url = &server.url;
    b.goto(&format!("{url}/setup")).await.unwrap();
    fill(&b, "#password", "a very good password").await;
    fill(&b, "#confirm", "a very good password").await;
    click(&b, "form button[type=submit]").await;
    arrive(&b, "/admin").await;

    b.goto(&format!("{url}/admin/backups/target"))
        .await
        .unwrap();
    assert_fits(&b, "where backups go").await;
    fill(&b, "#endpoint", g.endpoint()).await;
    fill(&b, "#bucket", "hearth").await;
    fill(&b, "#access_key", g.key_id()).await;
    fill(&b, "#secret", &"0".repeat(64)).await;
    test_connection_says(
        &b,
        "Connection failed: the access key ID or secret key is wrong",
    )
    .await;
    shot(&b, "phone-360-14-s3-target-wrong-key").await;

    // What was typed is kept, except the secret, which is asked for again.
    let secret = b.find(Locator::Css("#secret")).await.unwrap();
    assert_eq!(secret.prop("value").await.unwrap().as_deref(), Some(""));

    // A CA certificate that is none is named before any connection; the
    // text typed stays in the (then open) box, to be mended.
    click(&b, "details summary").await;
    fill(&b, "#ca", "not a certificate").await;
    fill(&b, "#secret", g.secret()).await;
    test_connection_says(&b, "the CA certificate holds no certificate").await;
    assert_fits(&b, "a refused CA certificate").await;
    let ca = b.find(Locator::Css("#ca")).await.unwrap();
    assert_eq!(
        ca.prop("value").await.unwrap().as_deref(),
        Some("not a certificate")
    );
    ca.clear().await.unwrap();

    fill(&b, "#secret", g.secret()).await;
    test_connection_says(&b, "Connection works").await;
    assert!(!b.source().await.unwrap().contains(g.secret()));
    shot(&b, "phone-360-15-s3-target-works").await;

    fill(&b, "#secret", g.secret()).await;
    click(&b, "#save-target").await;
    appears(&b, "#target-state").await;
    let page = text(&b).await;
    assert!(page.contains("S3 target saved"), "{page}");
    assert!(page.contains("Bucket hearth at"), "{page}");
    assert!(!b.source().await.unwrap().contains(g.secret()));
    assert_fits(&b, "the saved target").await;
    shot(&b, "phone-360-16-s3-target-saved").await;
    let saved = std::fs::read_to_string(server.data_dir().join("s3-secret")).unwrap();
    assert_eq!(saved, g.secret());
    // The dashboard's Backups card carries the target's line.
    b.goto(&format!("{url}/admin")).await.unwrap();
    let line = crate::browser::text_of(&b, "#backup-target").await;
    assert!(
        line.starts_with("S3 target hearth: up to date")
            && line.contains("last upload never · last check never"),
        "{line}"
    );
}

/// Presses "Test connection" and reads the sentence it shows.
/// Presses "Test connection" and checks that its answer says `expected`.
async fn test_connection_says(b: &fantoccini::Client, expected: &str) {
    submit(b, "#test-connection").await;
    appears(b, "#test-result").await;
    let result = crate::browser::text_of(b, "#test-result").await;
    assert!(result.contains(expected), "{result}");
}
