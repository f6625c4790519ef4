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
