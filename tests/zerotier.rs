//! Admin → Network against a fake `zerotier-one`: a small axum server in
//! this process that follows ZeroTier's published service API (GET
//! /status, GET /network, GET/POST/DELETE /network/{id}, the X-ZT1-Auth
//! token), since zerotier-one is not in Debian's archive.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use crate::util::{Client, TestServer, eventually_async};

/// The fake node's ID.
const NODE: &str = "1a2b3c4d5e";
/// The token the fake expects.
const TOKEN: &str = "x7k2m9q4w1e8r5t3y6u0i2o4";
/// How long a joined network stays "requesting configuration".
const CONFIG_DELAY: Duration = Duration::from_millis(1500);
/// A network ID whose controller never authorises the fake node.
const DENIED: &str = "deadbeef00000001";

/// What the fake service knows and what it was asked.
#[derive(Default)]
struct Fake {
    /// Joined networks and when they were joined.
    joined: Mutex<BTreeMap<String, Instant>>,
    /// Every request, as "METHOD /path", whether authorised or not.
    requests: Mutex<Vec<String>>,
    /// The bodies of join requests.
    join_bodies: Mutex<Vec<String>>,
}

impl Fake {
    fn changes(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !r.starts_with("GET"))
            .cloned()
            .collect()
    }

    /// Records the request and says whether it carries the right token.
    fn check(&self, method: Method, path: &str, headers: &HeaderMap) -> bool {
        self.requests
            .lock()
            .unwrap()
            .push(format!("{method} {path}"));
        headers.get("x-zt1-auth").and_then(|v| v.to_str().ok()) == Some(TOKEN)
    }

    fn network(&self, id: &str, joined: Instant) -> Value {
        let configured = joined.elapsed() >= CONFIG_DELAY;
        let status = match (configured, id == DENIED) {
            (false, _) => "REQUESTING_CONFIGURATION",
            (true, true) => "ACCESS_DENIED",
            (true, false) => "OK",
        };
        let ok = status == "OK";
        json!({
            "id": id,
            "nwid": id,
            "name": if ok { "hearth-pair" } else { "" },
            "status": status,
            "type": "PRIVATE",
            "mac": "f2:11:22:33:44:55",
            "mtu": 2800,
            "dhcp": false,
            "bridge": false,
            "broadcastEnabled": true,
            "portError": 0,
            "netconfRevision": if ok { 3 } else { 0 },
            "assignedAddresses": if ok { vec!["10.147.17.23/24"] } else { vec![] },
            "routes": if ok { json!([{"target": "10.147.17.0/24", "via": null, "flags": 0, "metric": 0}]) } else { json!([]) },
            "portDeviceName": format!("zt{}", &id[..8]),
            "allowManaged": true,
            "allowGlobal": false,
            "allowDefault": false,
            "allowDNS": false,
        })
    }
}

/// What the real service answers a missing or wrong token.
fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({}))).into_response()
}

async fn status(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if !fake.check(Method::GET, "/status", &headers) {
        return unauthorized();
    }
    Json(json!({
        "address": NODE,
        "publicIdentity": format!("{NODE}:0:0123abcd"),
        "online": true,
        "tcpFallbackActive": false,
        "versionMajor": 1, "versionMinor": 14, "versionRev": 2, "version": "1.14.2",
        "clock": 1_700_000_000_000_u64,
        "planetWorldId": 149604618,
        "config": {"settings": {"primaryPort": 9993, "allowTcpFallbackRelay": true}},
    }))
    .into_response()
}

async fn list(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    if !fake.check(Method::GET, "/network", &headers) {
        return unauthorized();
    }
    let joined = fake.joined.lock().unwrap().clone();
    let all: Vec<Value> = joined.iter().map(|(id, t)| fake.network(id, *t)).collect();
    Json(all).into_response()
}

async fn one(
    method: Method,
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !fake.check(method.clone(), &format!("/network/{id}"), &headers) {
        return unauthorized();
    }
    let not_found = || (StatusCode::NOT_FOUND, Json(json!({}))).into_response();
    let mut joined = fake.joined.lock().unwrap();
    match method {
        Method::GET => match joined.get(&id) {
            Some(t) => Json(fake.network(&id, *t)).into_response(),
            None => not_found(),
        },
        Method::POST => {
            if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return not_found();
            }
            fake.join_bodies.lock().unwrap().push(body);
            let t = *joined.entry(id.clone()).or_insert_with(Instant::now);
            Json(fake.network(&id, t)).into_response()
        }
        Method::DELETE => match joined.remove(&id) {
            Some(_) => Json(json!({"result": true})).into_response(),
            None => not_found(),
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

/// Starts the fake on 127.0.0.1 with a port the kernel chose; it lives as
/// long as the test's runtime.
async fn start_fake() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/status", get(status))
        .route("/network", get(list))
        .route("/network/{id}", get(one).post(one).delete(one))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, url)
}

/// A hearth pointed at `api` with `token_file`, claimed and logged in.
async fn hearth(api: &str, token_file: &std::path::Path) -> (TestServer, Client) {
    let server = TestServer::start_configured(
        &[],
        &format!("zerotier_api = {api:?}\nzerotier_token_file = {token_file:?}\n"),
        &[("PATH", "/nonexistent")],
    );
    let mut c = server.client();
    assert_eq!(c.claim("admin password 1").await.status, 303);
    (server, c)
}

fn token_file(token: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authtoken.secret");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    (dir, path)
}

/// Loads the page until it contains `text`.
async fn wait_for(c: &mut Client, text: &str, within: Duration) -> String {
    eventually_async(within, &format!("{text:?} on the page"), async || {
        let page = c.get("/admin/network").await;
        if page.body.contains(text) {
            Ok(page.body)
        } else {
            Err(page.body)
        }
    })
    .await
}

#[tokio::test]
async fn zerotier_networks_are_joined_shown_and_left() {
    let (fake, api) = start_fake().await;
    let (_dir, token) = token_file(TOKEN);
    let (server, mut c) = hearth(&api, &token).await;

    // Admin only.
    let anonymous = server.client().get("/admin/network").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.location(), Some("/login"));

    let page = c.get("/admin/network").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"href="/admin/network""#), "nav link");
    assert!(page.body.contains(NODE), "{}", page.body);
    assert!(page.body.contains("ZeroTier is online"));
    assert!(page.body.contains("has not joined a ZeroTier network"));

    // Bad IDs: a sentence, and nothing reaches the service.
    for bad in ["8056c2e21c00000g", "8056c2e21c00000", "../status", ""] {
        let p = c
            .submit("/admin/network", "/admin/network/join", &[("network", bad)])
            .await;
        assert_eq!(p.status, 400, "{bad:?}");
        assert!(
            p.body.contains("is not a ZeroTier network ID"),
            "{}",
            p.body
        );
    }
    let p = c
        .submit(
            "/admin/network",
            "/admin/network/leave",
            &[("network", "nope")],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(fake.changes().is_empty(), "{:?}", fake.changes());

    // No CSRF token, no join.
    let p = c
        .post("/admin/network/join", &[("network", "8056c2e21c000001")])
        .await;
    assert_eq!(p.status, 403);
    assert!(fake.changes().is_empty());

    // Join (capitals and spaces from a paste are fine): first waiting for
    // the controller, then connected with an address.
    let p = c
        .submit(
            "/admin/network",
            "/admin/network/join",
            &[("network", " 8056C2E21C000001 ")],
        )
        .await;
    assert_eq!(p.location(), Some("/admin/network"), "{}", p.body);
    assert_eq!(fake.changes(), ["POST /network/8056c2e21c000001"]);
    let body = fake.join_bodies.lock().unwrap()[0].clone();
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["allowDefault"], false);
    assert_eq!(sent["allowGlobal"], false);
    let page = c.get("/admin/network").await;
    assert!(page.body.contains(r#"id="network-8056c2e21c000001""#));
    assert!(
        page.body.contains("Waiting for the network")
            && page.body.contains("http-equiv=\"refresh\""),
        "{}",
        page.body
    );
    let body = wait_for(&mut c, "Connected", Duration::from_secs(10)).await;
    assert!(body.contains("10.147.17.23/24"), "{body}");
    assert!(body.contains("hearth-pair") && body.contains("zt8056c2e2"));
    assert!(!body.contains("http-equiv=\"refresh\""));

    // A network that does not authorise this node says so.
    c.submit(
        "/admin/network",
        "/admin/network/join",
        &[("network", DENIED)],
    )
    .await;
    wait_for(&mut c, "Not authorised yet", Duration::from_secs(10)).await;

    // Leave both.
    for id in ["8056c2e21c000001", DENIED] {
        let p = c
            .submit("/admin/network", "/admin/network/leave", &[("network", id)])
            .await;
        assert_eq!(p.location(), Some("/admin/network"), "{}", p.body);
    }
    assert!(fake.joined.lock().unwrap().is_empty());
    let page = c.get("/admin/network").await;
    assert!(!page.body.contains("id=\"network-"), "{}", page.body);
    assert!(page.body.contains("has not joined a ZeroTier network"));

    // Leaving again: not a member.
    let p = c
        .submit(
            "/admin/network",
            "/admin/network/leave",
            &[("network", "8056c2e21c000001")],
        )
        .await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("has not joined network 8056c2e21c000001"));
    assert!(!server.log().contains(TOKEN), "the token is never logged");
}

#[tokio::test]
async fn zerotier_wrong_or_unreadable_token_is_explained() {
    let (fake, api) = start_fake().await;
    let (dir, token) = token_file("not-the-token");
    let (server, mut c) = hearth(&api, &token).await;

    let page = c.get("/admin/network").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("The ZeroTier service refused Hearth"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("zerotier-join"), "no join form");
    assert!(fake.changes().is_empty());
    let p = c
        .submit(
            "/admin/network",
            "/admin/network/join",
            &[("network", "8056c2e21c000001")],
        )
        .await;
    assert_eq!(p.status, 502);
    assert!(p.body.contains("refused"), "{}", p.body);

    // A token file Hearth cannot read (here a directory in its place; on
    // the device, a file only root may read).
    std::fs::remove_file(&token).unwrap();
    std::fs::create_dir(&token).unwrap();
    let page = c.get("/admin/network").await;
    assert!(
        page.body.contains("Hearth cannot read ZeroTier"),
        "{}",
        page.body
    );
    assert!(page.body.contains("readable by the hearth user"));
    assert!(!server.log().contains("not-the-token"));
    drop(dir);
}

#[tokio::test]
async fn zerotier_absent_is_explained() {
    // A port nobody listens on: a privileged one, outside the ephemeral
    // range. (A port bound and freed here could be handed by the kernel to
    // the next listener on 127.0.0.1:0, even this test's own Hearth, which
    // then answered 404 in a CI run.)
    let api = "http://127.0.0.1:9".to_string();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("authtoken.secret");
    let (_server, mut c) = hearth(&api, &token).await;

    // Never installed: no token file.
    let page = c.get("/admin/network").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("ZeroTier is not installed on this device"),
        "{}",
        page.body
    );
    assert!(page.body.contains("docs/remote-access.md"));
    assert!(!page.body.contains("zerotier-join"), "no join form");

    // Installed but stopped: the token is there, nothing answers. The file
    // is read afresh, so no restart is needed.
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let page = c.get("/admin/network").await;
    assert!(
        page.body.contains("The ZeroTier service is not running"),
        "{}",
        page.body
    );
    let p = c
        .submit(
            "/admin/network",
            "/admin/network/join",
            &[("network", "8056c2e21c000001")],
        )
        .await;
    assert_eq!(p.status, 503);
    assert!(p.body.contains("not running"));
}
