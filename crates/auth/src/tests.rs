use super::*;

fn setup() -> (tempfile::TempDir, Auth) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hearth.db")).unwrap();
    (dir, Auth::new(store).unwrap())
}

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn claim_then_login() {
    let (_d, auth) = setup();
    assert!(!auth.is_claimed().await.unwrap());
    let token = auth.claim("correct horse", "correct horse").await.unwrap();
    assert!(auth.session_is_valid(token.cookie_value()).await.unwrap());
    assert!(auth.is_claimed().await.unwrap());
    assert!(matches!(
        auth.claim("another one", "another one").await,
        Err(AuthError::AlreadyClaimed)
    ));
    assert!(matches!(
        auth.login(IP, "wrong password").await,
        Err(AuthError::WrongPassword)
    ));
    let t = auth.login(IP, "correct horse").await.unwrap();
    auth.logout(t.cookie_value()).await.unwrap();
    assert!(!auth.session_is_valid(t.cookie_value()).await.unwrap());
}

#[tokio::test]
async fn bad_new_passwords_are_explained() {
    let (_d, auth) = setup();
    let short = auth.claim("short", "short").await.unwrap_err().to_string();
    assert!(short.contains("at least 8"), "{short}");
    let differ = auth.claim("long enough", "long enougH").await.unwrap_err();
    assert!(differ.to_string().contains("differ"));
    assert!(!auth.is_claimed().await.unwrap(), "nothing stored");
}

#[tokio::test]
async fn garbage_session_cookies_are_invalid() {
    let (_d, auth) = setup();
    assert!(!auth.session_is_valid("").await.unwrap());
    assert!(!auth.session_is_valid("zz").await.unwrap());
    assert!(!auth.session_is_valid(&"a".repeat(64)).await.unwrap());
}

#[tokio::test]
async fn reset_file_clears_admin_and_is_removed() {
    let (dir, auth) = setup();
    let store = auth.inner.store.clone();
    auth.claim("correct horse", "correct horse").await.unwrap();
    let boot = dir.path().join("boot");
    std::fs::create_dir(&boot).unwrap();
    assert!(!reset_if_requested(&store, &boot).unwrap());
    std::fs::write(boot.join(RESET_FILE), b"").unwrap();
    assert!(reset_if_requested(&store, &boot).unwrap());
    assert!(!boot.join(RESET_FILE).exists());
    assert!(!auth.is_claimed().await.unwrap());
}

#[test]
fn csrf_tokens_bind_to_their_cookie() {
    let (_d, auth) = setup();
    let key = auth.csrf();
    let cookie = CsrfKey::new_cookie().unwrap();
    let token = key.token_for(&cookie);
    assert!(key.verify(&cookie, &token));
    assert!(!key.verify(&CsrfKey::new_cookie().unwrap(), &token));
    assert!(!key.verify(&cookie, "not hex"));
    assert!(!key.verify("", &key.token_for("")));
}
