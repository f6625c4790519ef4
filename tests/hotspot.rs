use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::util::{TestServer, eventually_async};

/// A server whose PATH finds the fake nmcli first, with the hotspot
/// "Hearth-1a2b", open, and a 3-second window to keep a change.
fn server_with_fake_nmcli() -> (TestServer, PathBuf) {
    let bin = tempfile::tempdir().unwrap().keep();
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fake-nmcli");
    std::fs::copy(&fake, bin.join("nmcli")).unwrap();
    let state = bin.join("state");
    std::fs::write(&state, "Hearth-1a2b\n\n\n").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let server = TestServer::start_configured(
        &[],
        "hotspot_confirm_secs = 3\n",
        &[
            ("PATH", &path),
            ("FAKE_NMCLI_STATE", state.to_str().unwrap()),
        ],
    );
    (server, state)
}

fn hotspot(state: &Path) -> Vec<String> {
    std::fs::read_to_string(state)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until the hotspot reads `want` (name, key management, password)
/// and the server's log has a line containing `logged`: the fake nmcli
/// writes the name at `modify`, before `up` runs and before Hearth logs
/// the outcome, so neither alone says the undo has finished.
async fn wait_for(
    server: &TestServer,
    state: &Path,
    want: [&str; 3],
    logged: &str,
    within: Duration,
) {
    eventually_async(within, &format!("the hotspot {want:?}"), async || {
        let now = hotspot(state);
        if now != want {
            Err(format!("hotspot {now:?}"))
        } else if !server.log().contains(logged) {
            Err(format!("no {logged:?} in the log yet"))
        } else {
            Ok(())
        }
    })
    .await
}

#[tokio::test]
async fn the_hotspot_is_protected_at_setup_and_bad_changes_undo_themselves() {
    let (mut server, state) = server_with_fake_nmcli();
    let pending = server.data_dir().join("hotspot-pending.json");
    let mut c = server.client();

    // Claiming leads to the last step: the hotspot is still open.
    assert_eq!(
        c.claim("admin password 1").await.location(),
        Some("/admin/hotspot")
    );
    let page = c.get("/admin/hotspot").await;
    assert!(
        page.body.contains("Last step: protect the hotspot"),
        "{}",
        page.body
    );
    assert!(page.body.contains("open to anyone nearby"));

    // Bad input: a message, nothing applied.
    let form = |ssid: &'static str, pw: &'static str, confirm: &'static str| {
        [("ssid", ssid), ("password", pw), ("confirm", confirm)]
    };
    let p = c
        .submit(
            "/admin/hotspot",
            "/admin/hotspot",
            &form("Kitchen", "correct horse", "correct hoarse"),
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("The two passwords differ"));
    let p = c
        .submit(
            "/admin/hotspot",
            "/admin/hotspot",
            &form("Kitchen", "short", "short"),
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("8 to 63 characters"));
    assert_eq!(hotspot(&state), ["Hearth-1a2b", "", ""]);

    // NetworkManager refuses: the old settings are back at once.
    let p = c
        .submit(
            "/admin/hotspot",
            "/admin/hotspot",
            &form("Refused Net", "correct horse", "correct horse"),
        )
        .await;
    assert_eq!(p.status, 502, "{}", p.body);
    assert!(
        p.body.contains("The previous name and password are back"),
        "{}",
        p.body
    );
    assert_eq!(hotspot(&state), ["Hearth-1a2b", "", ""]);
    assert!(!pending.exists());

    // A good change, kept in time, stays.
    let p = c
        .submit(
            "/admin/hotspot",
            "/admin/hotspot",
            &form("Kitchen", "correct horse", "correct horse"),
        )
        .await;
    assert_eq!(p.location(), Some("/admin/hotspot"));
    assert_eq!(hotspot(&state), ["Kitchen", "wpa-psk", "correct horse"]);
    assert!(
        pending.exists(),
        "the old settings are on disk before the change"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pending).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let page = c.get("/admin/hotspot").await;
    assert!(page.body.contains("Keep these settings"), "{}", page.body);
    let kept = c.submit("/admin/hotspot", "/admin/hotspot/keep", &[]).await;
    assert_eq!(kept.location(), Some("/admin"));
    assert!(!pending.exists());
    // Past the 3-second window, the kept change must still be there: this
    // waits out the window on purpose (something must NOT happen).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hotspot(&state), ["Kitchen", "wpa-psk", "correct horse"]);
    let page = c.get("/admin/hotspot").await;
    assert!(page.body.contains("protected by a WPA2 password"));

    // A change nobody keeps comes back by itself.
    c.submit(
        "/admin/hotspot",
        "/admin/hotspot",
        &form("Attic", "another password", "another password"),
    )
    .await;
    assert_eq!(hotspot(&state)[0], "Attic");
    wait_for(
        &server,
        &state,
        ["Kitchen", "wpa-psk", "correct horse"],
        "was not kept in time",
        Duration::from_secs(15),
    )
    .await;

    // A change pending when Hearth stops is undone at the next start.
    c.submit(
        "/admin/hotspot",
        "/admin/hotspot",
        &form("Cellar", "third password", "third password"),
    )
    .await;
    assert_eq!(hotspot(&state)[0], "Cellar");
    server.stop();
    assert!(pending.exists());
    server.restart_after_stop();
    assert_eq!(hotspot(&state), ["Kitchen", "wpa-psk", "correct horse"]);
    assert!(!pending.exists());
    assert!(server.log().contains("never confirmed"));
}

#[tokio::test]
async fn without_networkmanager_setup_ends_at_the_dashboard() {
    let server = TestServer::start_configured(&[], "", &[("PATH", "/nonexistent")]);
    let mut c = server.client();
    assert_eq!(c.claim("admin password 1").await.location(), Some("/admin"));
    let page = c.get("/admin/hotspot").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("no hotspot to manage"), "{}", page.body);
}
