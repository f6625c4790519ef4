//! Forms posted from another site carry a valid CSRF token in these tests
//! (as a page that stole one would), so only the `Origin` / `Referer` rule
//! can refuse them. Each test also shows the same form from this Hearth
//! going through, so a rule that refused everything would fail.

use reqwest::multipart::Form;

use crate::util::{Page, TestServer};

const PW: &str = "correct horse battery";

/// The sentence the refusal page shows (the CSRF failure's).
const REFUSED: &str = "did not come from this Hearth";

/// How a browser says a form came from another site: by its `Origin`, or
/// only by its `Referer`, or with `Origin: null` from a sandboxed frame on
/// a sibling site.
const ELSEWHERE: [&[(&str, &str)]; 3] = [
    &[("origin", "http://evil.example")],
    &[("referer", "http://evil.example/x")],
    &[("origin", "null"), ("sec-fetch-site", "same-site")],
];

fn assert_refused(page: &Page, from: &[(&str, &str)]) {
    assert_eq!(page.status, 403, "{from:?}: {}", page.body);
    assert!(page.body.contains(REFUSED), "{from:?}: {}", page.body);
}

async fn claimed() -> TestServer {
    let server = TestServer::start();
    assert_eq!(server.client().claim(PW).await.status, 303);
    server
}

#[tokio::test]
async fn setup_posted_from_another_site_claims_nothing() {
    let server = TestServer::start();
    let mut c = server.client();
    let token = c.get("/setup").await.csrf();
    let form = [("csrf", token.as_str()), ("password", PW), ("confirm", PW)];
    for from in ELSEWHERE {
        assert_refused(&c.post_with("/setup", &form, from).await, from);
    }
    assert_eq!(c.get("/admin").await.location(), Some("/setup"));
    assert!(
        server
            .client()
            .get("/setup")
            .await
            .body
            .contains("Set up this Hearth"),
        "still unclaimed"
    );
    assert!(
        server
            .log()
            .contains("refused a cross-site form post to /setup")
    );

    // This server's own Origin, e.g. `http://127.0.0.1:41234`.
    let done = c
        .post_with("/setup", &form, &[("origin", &server.url)])
        .await;
    assert_eq!(
        (done.status.as_u16(), done.location()),
        (303, Some("/admin"))
    );
    assert_eq!(c.get("/admin").await.status, 200);
}

#[tokio::test]
async fn login_posted_from_another_site_starts_no_session() {
    let server = claimed().await;
    let mut c = server.client();
    let token = c.get("/login").await.csrf();
    let form = [("csrf", token.as_str()), ("password", PW)];
    for from in ELSEWHERE {
        let page = c.post_with("/login", &form, from).await;
        assert_refused(&page, from);
        assert!(page.set_cookie("hearth_session").is_none(), "{from:?}");
    }
    assert_eq!(c.get("/admin").await.location(), Some("/login"));

    // Hearth's own login form, as Chromium posts it: the page's
    // `Referrer-Policy: no-referrer` makes the Origin `null`, and the
    // browser vouches for it with `Sec-Fetch-Site: same-origin`.
    let own_form = [("origin", "null"), ("sec-fetch-site", "same-origin")];
    let ok = c.post_with("/login", &form, &own_form).await;
    assert_eq!((ok.status.as_u16(), ok.location()), (303, Some("/admin")));
    assert_eq!(c.get("/admin").await.status, 200);

    let mut other = server.client();
    let token = other.get("/login").await.csrf();
    let form = [("csrf", token.as_str()), ("password", PW)];
    let referer = format!("{}/login", server.url);
    for own in [
        [("origin", server.url.as_str())],
        [("referer", referer.as_str())],
    ] {
        let ok = other.post_with("/login", &form, &own).await;
        assert_eq!((ok.status.as_u16(), ok.location()), (303, Some("/admin")));
    }
}

#[tokio::test]
async fn admin_forms_posted_from_another_site_change_nothing() {
    let server = claimed().await;
    let mut c = server.client();
    assert_eq!(c.login(PW).await.status, 303);
    let token = c.get("/admin/board").await.csrf();
    let form = [
        ("csrf", token.as_str()),
        ("title", "Taken Over"),
        ("welcome", "by evil.example"),
    ];
    for from in ELSEWHERE {
        assert_refused(
            &c.post_with("/admin/board/landing", &form, from).await,
            from,
        );
    }
    // A multipart form (a board post) is checked the same way.
    let post = |token: &str| {
        Form::new()
            .text("csrf", token.to_string())
            .text("body", "posted from evil.example")
    };
    for from in ELSEWHERE {
        let page = c
            .post_multipart("/boards/1/posts", post(&token), from)
            .await;
        assert_refused(&page, from);
    }
    let landing = c.get("/").await.body;
    assert!(!landing.contains("Taken Over"), "{landing}");
    assert!(!c.get("/boards/1").await.body.contains("evil.example"));
    assert_eq!(c.get("/admin").await.status, 200, "still logged in");

    let own = [("origin", server.url.as_str())];
    let form = [
        ("csrf", token.as_str()),
        ("title", "The Green Street Hearth"),
        ("welcome", "Be kind."),
    ];
    let done = c.post_with("/admin/board/landing", &form, &own).await;
    assert_eq!(
        done.location(),
        Some("/admin/board?done=1"),
        "{}",
        done.body
    );
    assert!(c.get("/").await.body.contains("The Green Street Hearth"));
    let own_post = Form::new()
        .text("csrf", token.clone())
        .text("body", "posted from this Hearth");
    let posted = c.post_multipart("/boards/1/posts", own_post, &own).await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    assert!(
        c.get("/boards/1")
            .await
            .body
            .contains("posted from this Hearth")
    );
}

/// Without `Origin` or `Referer` nothing changes: the token decides.
#[tokio::test]
async fn forms_without_origin_or_referer_are_left_to_the_token() {
    let server = claimed().await;
    let mut c = server.client();
    assert_eq!(c.login(PW).await.status, 303);
    let token = c.get("/admin").await.csrf();
    let none = c.post("/logout", &[]).await;
    assert_eq!(none.status, 403);
    let out = c.post("/logout", &[("csrf", &token)]).await;
    assert_eq!(out.location(), Some("/login"));
}
