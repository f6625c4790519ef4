use crate::util::TestServer;

#[tokio::test]
async fn admin_urls_redirect_to_setup_until_claimed() {
    let server = TestServer::start();
    let mut c = server.client();
    for path in ["/admin", "/admin/settings", "/login"] {
        let page = c.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.location(), Some("/setup"), "{path}");
    }
    let setup = c.get("/setup").await;
    assert_eq!(setup.status, 200);
    assert!(setup.body.contains("Set up this Hearth"));
}

#[tokio::test]
async fn claim_sets_password_and_lands_on_dashboard() {
    let server = TestServer::start();
    let mut c = server.client();
    let done = c.claim("a long admin password").await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), Some("/admin"));
    let dash = c.get("/admin").await;
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("Memory") && dash.body.contains("Disk"));
    // Setup is closed now.
    assert_eq!(c.get("/setup").await.location(), Some("/login"));
    let stored = std::fs::read(server.data_dir().join("hearth.db")).unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(
        !text.contains("a long admin password"),
        "no plaintext at rest"
    );
}

#[tokio::test]
async fn bad_setup_input_is_explained_and_stores_nothing() {
    let server = TestServer::start();
    let mut c = server.client();
    let short = c.claim("short").await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("at least 8 characters"));
    let differ = c
        .submit(
            "/setup",
            "/setup",
            &[("password", "abcdefghij"), ("confirm", "abcdefghik")],
        )
        .await;
    assert_eq!(differ.status, 400);
    assert!(differ.body.contains("The two passwords differ"));
    let missing = c
        .submit("/setup", "/setup", &[("password", "abcdefghij")])
        .await;
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("incomplete"));
    assert_eq!(c.get("/admin").await.location(), Some("/setup"));
}

/// Two visitors submit setup at the same moment: exactly one becomes admin,
/// the other is told the Hearth is already set up, and nothing else changes.
/// Repeated on fresh servers, since a race shows itself only sometimes.
#[tokio::test]
async fn concurrent_claims_have_exactly_one_winner() {
    for _ in 0..3 {
        let server = TestServer::start();
        let mut a = server.client();
        let mut b = server.client();
        let ta = a.get("/setup").await.csrf();
        let tb = b.get("/setup").await.csrf();
        let form_a = [
            ("csrf", ta.as_str()),
            ("password", "password-of-a"),
            ("confirm", "password-of-a"),
        ];
        let form_b = [
            ("csrf", tb.as_str()),
            ("password", "password-of-b"),
            ("confirm", "password-of-b"),
        ];
        let (ra, rb) = tokio::join!(a.post("/setup", &form_a), b.post("/setup", &form_b));
        let mut statuses = [ra.status.as_u16(), rb.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [303, 409], "one wins, one conflicts");
        let (loser, winner_pw, loser_pw) = if ra.status == 303 {
            (&rb, "password-of-a", "password-of-b")
        } else {
            (&ra, "password-of-b", "password-of-a")
        };
        assert!(loser.body.contains("already set up"), "{}", loser.body);
        let mut c = server.client();
        assert_eq!(
            c.login(loser_pw).await.status,
            401,
            "loser's password not stored"
        );
        assert_eq!(c.login(winner_pw).await.status, 303);
    }
}
