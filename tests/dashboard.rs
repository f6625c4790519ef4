use crate::util::{TestServer, run_backup};

/// The dashboard's backup card follows the catalogue: nothing before the
/// first backup, then the last snapshot and the repository size.
#[tokio::test]
async fn dashboard_shows_the_last_backup_and_repository_size() {
    let server = TestServer::start();
    let mut c = server.client();
    assert_eq!(c.claim("dashboard password").await.status, 303);
    let before = c.get("/admin").await.body;
    assert!(before.contains("No backups yet"), "{before}");

    let cfg = server.config_path();
    let data = server.data_dir();
    let pp = server.dir.path().join("pp");
    std::fs::write(&pp, "a long recovery passphrase\n").unwrap();
    let src = server.dir.path().join("photos");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("cat.jpg"), vec![7u8; 100_000]).unwrap();
    let hearth = |args: &[&str]| {
        let (code, _, err) = run_backup(&cfg, &data, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    };
    hearth(&["init", "--passphrase-file", pp.to_str().unwrap()]);
    hearth(&["run", src.to_str().unwrap()]);

    let after = c.get("/admin").await.body;
    assert!(after.contains("Last: "), "{after}");
    assert!(after.contains("photos: 1 files"), "{after}");
    assert!(
        after.contains("1 snapshots") && after.contains("repository "),
        "{after}"
    );
}
