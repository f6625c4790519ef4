//! Router-level checks without a socket; the real binary is tested in the
//! top-level tests/.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{Request, StatusCode, header},
};
use tower::ServiceExt;

use super::*;

fn app() -> (tempfile::TempDir, axum::Router) {
    let (dir, router, _) = app_and_state();
    (dir, router)
}

fn app_and_state() -> (tempfile::TempDir, axum::Router, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let store = hearth_store::Store::open(&dir.path().join("hearth.db")).unwrap();
    let state = AppState::new(
        crate::Shared::new(crate::Services {
            auth: hearth_auth::Auth::new(store.clone()).unwrap(),
            clock: hearth_system::Clock::simulated(0),
            store: store.clone(),
            jobs: hearth_jobs::Jobs::start(
                hearth_jobs::Paths::under(dir.path()),
                std::time::Duration::from_secs(1),
            ),
            mirror: hearth_mirror::Mirror::new(
                hearth_mirror::Identity::generate().unwrap(),
                store,
                hearth_mirror::Settings {
                    data_dir: dir.path().to_path_buf(),
                    name: "test".into(),
                    grace: std::time::Duration::from_secs(60),
                    bandwidth: 0,
                    every: std::time::Duration::from_secs(3600),
                    prove_every: std::time::Duration::from_secs(3600),
                    board_every: std::time::Duration::from_secs(30),
                    board_photo_budget: 0,
                    updates: hearth_update::Updates::new(
                        dir.path().join("update"),
                        dir.path().join("hearth.db"),
                        hearth_update::Keys::new("").unwrap(),
                    ),
                },
                7443,
            ),
            hotspot: hearth_net::hotspot::Hotspot::open(
                "Hearth-hotspot",
                dir.path(),
                std::time::Duration::from_secs(60),
            ),
            zerotier: hearth_net::zerotier::ZeroTier::new(
                "http://127.0.0.1:9",
                &dir.path().join("no-zerotier-token"),
            )
            .unwrap(),
            discovery: hearth_net::discovery::Discovery::off("unit tests"),
            data_dir: dir.path().to_path_buf(),
            files_dir: dir.path().join("files"),
            secure_cookies: false,
            updates: hearth_update::Updates::new(
                dir.path().join("update"),
                dir.path().join("hearth.db"),
                hearth_update::Keys::new("").unwrap(),
            ),
            restart: std::sync::Arc::default(),
        })
        .unwrap(),
    );
    let peer = crate::Peer {
        remote: SocketAddr::from(([127, 0, 0, 1], 9)),
        local: SocketAddr::from(([127, 0, 0, 1], 80)),
    };
    let router = router(state.clone()).layer(MockConnectInfo(peer));
    (dir, router, state)
}

async fn get(app: &axum::Router, path: &str) -> axum::response::Response {
    app.clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_redirects_to_setup_until_claimed() {
    let (_d, app) = app();
    for path in ["/admin", "/admin/", "/admin/anything", "/login"] {
        let r = get(&app, path).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[header::LOCATION], "/setup", "{path}");
    }
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let (_d, app) = app();
    for path in ["/", "/setup", "/nope", "/static/hearth.css"] {
        let r = get(&app, path).await;
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert!(h.contains_key(header::REFERRER_POLICY), "{path}");
    }
}

#[tokio::test]
async fn setup_post_without_csrf_is_refused_and_stores_nothing() {
    let (_d, app) = app();
    let r = app
        .clone()
        .oneshot(
            Request::post("/setup")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("password=abcdefgh12&confirm=abcdefgh12"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get(&app, "/admin").await.headers()[header::LOCATION],
        "/setup"
    );
}

#[tokio::test]
async fn unknown_page_is_a_human_404() {
    let (_d, app) = app();
    let r = get(&app, "/no/such/page").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("There is no page at this address."));
}

async fn page_with_cookie(app: &axum::Router, path: &str, cookie: &str) -> String {
    let r = app
        .clone()
        .oneshot(
            Request::get(path)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The cached board page: each browser gets its own CSRF token in every
/// form, no hole marker leaks, and a post shows up on the next load.
#[tokio::test]
async fn cached_board_pages_are_per_browser_and_follow_changes() {
    let (_d, app, state) = app_and_state();
    let post = |body: &str| hearth_board::NewPost {
        board: 1,
        parent: None,
        guest: None,
        nickname: String::new(),
        address: "127.0.0.1".into(),
        body: body.into(),
        photo: None,
    };
    state.board.post(post("first notice")).await.unwrap();
    let (a, b) = ("hearth_csrf=aaaaaaaa", "hearth_csrf=bbbbbbbb");
    let token_a = state.auth.csrf().token_for("aaaaaaaa");
    let token_b = state.auth.csrf().token_for("bbbbbbbb");
    let page_a = page_with_cookie(&app, "/boards/1", a).await;
    let page_b = page_with_cookie(&app, "/boards/1", b).await;
    for (page, mine, theirs) in [(&page_a, &token_a, &token_b), (&page_b, &token_b, &token_a)] {
        assert!(page.contains("first notice"));
        // The live element and the thread's reply form.
        assert!(page.matches(mine.as_str()).count() >= 2, "{page}");
        assert!(!page.contains(theirs.as_str()));
        assert!(!page.contains("hole-"), "{page}");
    }
    // Served from the cache, then rebuilt after a change.
    assert_eq!(page_with_cookie(&app, "/boards/1", a).await, page_a);
    state.board.post(post("second notice")).await.unwrap();
    let after = page_with_cookie(&app, "/boards/1", a).await;
    assert!(after.contains("second notice") && after.contains("first notice"));
}
