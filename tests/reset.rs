use crate::util::TestServer;

#[tokio::test]
async fn reset_file_returns_to_setup_and_is_removed() {
    let mut server = TestServer::start();
    let mut c = server.client();
    assert_eq!(c.claim("forgotten password").await.status, 303);
    assert_eq!(c.get("/admin").await.status, 200);

    server.stop();
    let flag = server.boot_dir().join("hearth-reset");
    std::fs::write(&flag, b"").unwrap();
    server.restart_after_stop();

    assert!(!flag.exists(), "reset file removed");
    c.base = server.url.clone();
    assert!(
        server.log().contains("admin password cleared"),
        "{}",
        server.log()
    );
    // The old session is gone and setup is open again.
    assert_eq!(c.get("/admin").await.location(), Some("/setup"));
    let mut fresh = server.client();
    assert_eq!(fresh.claim("a brand new password").await.status, 303);
    assert_eq!(
        server.client().login("forgotten password").await.status,
        401
    );

    // Without the file, a restart changes nothing.
    server.restart();
    assert_eq!(
        server.client().login("a brand new password").await.status,
        303
    );
}

/// The hash a user puts in `hearth.toml` on the card, made the way
/// docs/flashing.md says: Debian's `argon2` CLI.
fn argon2_cli(password: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("argon2")
        .args(["hearthsaltvalue", "-id", "-e"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("argon2 CLI (scripts/bootstrap installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_preseeded_hash_claims_the_admin_account_once() {
    let mut server = TestServer::start();
    let seed = server.data_dir().join("preseed-admin-hash");
    let restart_with = |server: &mut TestServer, contents: &str| {
        server.stop();
        std::fs::write(&seed, contents).unwrap();
        server.restart_after_stop();
        assert!(!seed.exists(), "the pre-seed file is removed once read");
    };

    // Garbage is refused with a reason, and the claim page stays open.
    restart_with(&mut server, "password123\n");
    assert!(
        server
            .log()
            .contains("ignored the pre-seeded admin password hash"),
        "{}",
        server.log()
    );
    assert_eq!(
        server.client().get("/admin").await.location(),
        Some("/setup")
    );

    // A real hash claims the account: the password logs in, setup is shut.
    restart_with(
        &mut server,
        &format!("{}\n", argon2_cli("pre-seeded password")),
    );
    assert!(server.log().contains("claimed with the pre-seeded"));
    assert_eq!(
        server.client().get("/setup").await.location(),
        Some("/login")
    );
    assert_eq!(server.client().login("wrong password!").await.status, 401);
    assert_eq!(
        server.client().login("pre-seeded password").await.status,
        303
    );

    // A second hash cannot take over a claimed account.
    restart_with(&mut server, &argon2_cli("an intruder's password"));
    assert!(server.log().contains("already claimed"));
    assert_eq!(
        server.client().login("an intruder's password").await.status,
        401
    );
    assert_eq!(
        server.client().login("pre-seeded password").await.status,
        303
    );
}
