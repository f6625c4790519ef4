//! A hostile peer (docs/board-replication.md, "Everything from a peer is
//! untrusted"): H pairs with B properly, then H's Hearth is replaced by a
//! fake on the same address, with H's own certificate and key, answering
//! B's pulls with markup, a 1 MB event, a forgery, a gap, garbage, photos
//! that lie, too large a batch and a flood. B stores what is valid (and
//! escapes it), refuses the rest whole and says why on its dashboard, keeps
//! to its per-peer budget, and its pages keep answering.

use std::{
    collections::BTreeMap,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header::CONTENT_TYPE},
    routing::{get, post},
};
use hearth_board::{
    Origin, WireEvent,
    share::{EventBody, EventKind, MAX_BATCH, PhotoRef},
};
use hearth_mirror::{
    Identity,
    boards::{PER_MINUTE, origin},
    protocol::{Since, SinceReply},
};

use crate::{
    board_share::share,
    mirror::{between, pair_and_confirm, start_both},
    netns::{Device, in_netns},
    util::{Client, eventually_async},
};

const CONFIG: &str = "board_pull_secs = 1\n";
const XSS: &str = "<script>alert(1)</script><img src=x onerror=alert(1)>";
const FLOOD: u64 = 10_000;

/// What the fake answers to `/v1/board/since`.
enum Case {
    /// H's log after the asker's cursor, at most `limit` events.
    Honest,
    /// This body, whatever was asked.
    Raw(String),
    /// One event more than asked for.
    Oversend(Vec<WireEvent>),
}

struct Fake {
    case: Case,
    /// H's events, seq 1, 2, … in order.
    log: Vec<WireEvent>,
    /// H's device ID and certificate, hex.
    id: String,
    cert: String,
    asks: usize,
    max_limit: usize,
    photo_asks: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A post on General claiming to come from `origin`.
fn body(origin: &str, seq: u64, text: &str) -> EventBody {
    EventBody {
        v: 1,
        board: "General".into(),
        origin: origin.into(),
        seq,
        hlc: (now_ms() << 16) + seq as i64,
        from: "Hostile".into(),
        kind: EventKind::Post,
        parent: None,
        nick: "Mallory".into(),
        admin: false,
        text: text.into(),
        photo: None,
        target: None,
    }
}

/// The event as it travels, signed by `signer` whatever origin it claims.
fn wire(signer: &Origin, body: &EventBody) -> WireEvent {
    let body = serde_json::to_string(body).unwrap();
    let sig = hex(&(signer.sign)(body.as_bytes()));
    WireEvent { body, sig }
}

fn reply(events: Vec<WireEvent>, certs: BTreeMap<String, String>, more: bool) -> String {
    serde_json::to_string(&SinceReply {
        events,
        certs,
        more,
    })
    .unwrap()
}

async fn since(State(fake): State<Shared>, ask: Bytes) -> (StatusCode, String) {
    let Ok(ask) = serde_json::from_slice::<Since>(&ask) else {
        return (StatusCode::BAD_REQUEST, "{}".into());
    };
    let mut f = fake.lock().unwrap();
    f.asks += 1;
    f.max_limit = f.max_limit.max(ask.limit);
    let certs = BTreeMap::from([(f.id.clone(), f.cert.clone())]);
    let body = match &f.case {
        Case::Raw(s) => s.clone(),
        Case::Honest => {
            let at = (ask.cursors.get(&f.id).copied().unwrap_or(0) as usize).min(f.log.len());
            let end = (at + ask.limit).min(f.log.len());
            reply(f.log[at..end].to_vec(), certs, end < f.log.len())
        }
        Case::Oversend(all) => reply(
            all.iter().take(ask.limit + 1).cloned().collect(),
            certs,
            true,
        ),
    };
    (StatusCode::OK, body)
}

/// A TLS listener for `axum::serve`: the handshake happens in `accept`.
struct Tls {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for Tls {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let tls = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), tls).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves the fake peer on H's peer address, inside H's namespace, with
/// H's identity.
fn serve_fake(h: &Device, identity: &Identity, fake: Shared) {
    let addr: std::net::SocketAddr = h.peer_addr.parse().unwrap();
    let listener = in_netns(&h.ns.name, move || std::net::TcpListener::bind(addr))
        .expect("H's peer address is free once H is stopped");
    listener.set_nonblocking(true).unwrap();
    let tls = Tls {
        tcp: tokio::net::TcpListener::from_std(listener).unwrap(),
        acceptor: hearth_mirror::tls::server_config(identity).unwrap().into(),
    };
    let app = Router::new()
        .route(
            "/v1/board/boards",
            get(|| async {
                (
                    [(CONTENT_TYPE, "application/json")],
                    r#"{"boards":["General"]}"#,
                )
            }),
        )
        .route("/v1/board/poke", post(|| async { StatusCode::NO_CONTENT }))
        .route("/v1/board/since", post(since))
        .route(
            "/v1/board/photo",
            // "A PNG", whose bytes are a Windows program's header.
            post(|State(f): State<Shared>| async move {
                f.lock().unwrap().photo_asks += 1;
                b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00".to_vec()
            }),
        )
        .with_state(fake);
    tokio::spawn(async move { axum::serve(tls, app).await });
}

/// One number from B's database (the sqlite3 CLI, read only).
fn sql(dev: &Device, query: &str) -> usize {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(dev.data_dir().join("hearth.db"))
        .arg(query)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{query}: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

/// Events B holds from `origin`.
fn held(dev: &Device, origin: &str) -> usize {
    sql(
        dev,
        &format!("SELECT count(*) FROM board_share_events WHERE origin = '{origin}'"),
    )
}

/// Board 1 as a guest sees it: each post's body and "from" mark.
async fn posts(url: &str) -> Vec<String> {
    let page = Client::new(url).get("/boards/1").await;
    assert_eq!(page.status, 200);
    page.body
        .split("<article")
        .skip(1)
        .map(|a| {
            let text = between(a, "class=\"body\">", "</div>").unwrap_or("");
            let from = between(a, "class=\"from\">", "</span>").unwrap_or("");
            format!("{} [{from}]", text.trim())
        })
        .collect()
}

/// B's dashboard line for the peer `hh`.
async fn board_line(cb: &mut Client, hh: &str) -> String {
    let dash = cb.get("/admin").await;
    assert_eq!(dash.status, 200, "{}", dash.body);
    between(&dash.body, &format!("id=\"board-link-{hh}\">"), "</p>")
        .unwrap_or_else(|| panic!("no board line for H: {}", dash.body))
        .to_string()
}

/// Waits for B to refuse H for a reason containing `why`; returns it.
async fn refused(cb: &mut Client, hh: &str, why: &str) -> String {
    eventually_async(Duration::from_secs(30), why, async || {
        let line = board_line(cb, hh).await;
        match line.split("<strong>Refused:</strong>").nth(1) {
            Some(r) if r.contains(why) => Ok(r.split("<form").next().unwrap().trim().to_string()),
            _ => Err(line),
        }
    })
    .await
}

async fn retry(cb: &mut Client, hh: &str) {
    let r = cb
        .submit("/admin", &format!("/admin/peers/{hh}/board-retry"), &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

/// Switches the fake to `case`, lifts any refusal, and checks that B
/// refuses H for `why` and stores nothing of what it sent.
async fn refuse(cb: &mut Client, b: &Device, fake: &Shared, case: Case, why: &str, label: &str) {
    let hh = fake.lock().unwrap().id.clone();
    let (rows, shown) = (held(b, &hh), posts(&b.url).await);
    assert!(rows > 0 && !shown.is_empty(), "{label}: H's post is on B");
    fake.lock().unwrap().case = case;
    retry(cb, &hh).await;
    let reason = refused(cb, &hh, why).await;
    assert_eq!(held(b, &hh), rows, "{label}: nothing of the batch stored");
    assert_eq!(
        posts(&b.url).await,
        shown,
        "{label}: the board is unchanged"
    );
    println!("{label}: B refused H ({reason}); stored nothing, board unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_peer_is_refused_escaped_and_rate_limited() {
    let (mut b, mut h) = (Device::new("Beta", CONFIG), Device::new("Hostile", CONFIG));
    let (link, mut cb, mut ch) = start_both(&mut b, &mut h).await;
    let (_, idh) = pair_and_confirm((&b, &h), (&mut cb, &mut ch), ("1", "1")).await;
    share(&mut cb).await;
    share(&mut ch).await;
    let hh = idh.to_hex();
    // A normal link first: B has exchanged with the real H.
    eventually_async(Duration::from_secs(30), "a first exchange", async || {
        let line = board_line(&mut cb, &hh).await;
        if line.contains("last exchange never") {
            Err(line)
        } else {
            Ok(())
        }
    })
    .await;

    // H's Hearth stops; a fake with H's identity takes its address.
    h.kill();
    let identity = Identity::load_or_create(&h.data_dir()).unwrap();
    assert_eq!(identity.id, idh);
    let signer = origin(&identity, "Hostile").unwrap();
    let fake: Shared = Arc::new(Mutex::new(Fake {
        case: Case::Honest,
        log: vec![wire(&signer, &body(&hh, 1, XSS))],
        id: hh.clone(),
        cert: hex(&signer.cert),
        asks: 0,
        max_limit: 0,
        photo_asks: 0,
    }));
    serve_fake(&h, &identity, fake.clone());
    let started = Instant::now();

    // a. Markup: stored, shown escaped, marked as H's.
    let page = eventually_async(Duration::from_secs(30), "H's post on B", async || {
        let page = Client::new(&b.url).get("/boards/1").await.body;
        if page.contains("from Hostile") {
            Ok(page)
        } else {
            Err(page)
        }
    })
    .await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert_eq!(held(&b, &hh), 1);
    let guest = format!("SELECT count(*) FROM board_posts WHERE guest_id = 'origin:{hh}'");
    assert_eq!(sql(&b, &guest), 1);
    println!("a. markup: B stored H's post #1 and shows it escaped, \"from Hostile\"");

    // b. A 1 MB event.
    let big = wire(&signer, &body(&hh, 2, &"A".repeat(1_000_000)));
    let certs = BTreeMap::from([(hh.clone(), hex(&signer.cert))]);
    let raw = Case::Raw(reply(vec![big], certs.clone(), false));
    refuse(&mut cb, &b, &fake, raw, "bytes", "b. 1 MB event").await;

    // c. A post claiming to be A's, with A's real certificate, signed by H.
    let a = Identity::generate().unwrap();
    let ah = a.id.to_hex();
    let forged = wire(&signer, &body(&ah, 1, "I am A, honest"));
    let a_cert = BTreeMap::from([(ah.clone(), hex(&a.cert_der))]);
    let raw = Case::Raw(reply(vec![forged], a_cert, false));
    refuse(&mut cb, &b, &fake, raw, "wrong signature", "c. forgery").await;
    assert_eq!(held(&b, &ah), 0);
    let a_known = format!("SELECT count(*) FROM board_origins WHERE origin = '{ah}'");
    assert_eq!(sql(&b, &a_known), 0);

    // d. H's #5 when B holds #1.
    let gap = wire(&signer, &body(&hh, 5, "five"));
    let raw = Case::Raw(reply(vec![gap], certs.clone(), false));
    refuse(&mut cb, &b, &fake, raw, "skips ahead", "d. gap").await;

    // e. Not JSON.
    let raw = Case::Raw(r#"{"events": [oops"#.into());
    refuse(&mut cb, &b, &fake, raw, "malformed", "e. malformed").await;

    // f. A "PNG" whose bytes are a program: the text arrives, the photo not.
    let mut pic = body(&hh, 2, "photo test");
    pic.photo = Some(PhotoRef {
        name: format!("{}.png", "ab".repeat(16)),
        size: 20,
        kind: "png".into(),
    });
    {
        let mut f = fake.lock().unwrap();
        f.log.push(wire(&signer, &pic));
        f.case = Case::Honest;
    }
    retry(&mut cb, &hh).await;
    let article = eventually_async(Duration::from_secs(30), "the photo post", async || {
        let page = Client::new(&b.url).get("/boards/1").await.body;
        let article = page
            .split("<article")
            .find(|a| a.contains("photo test"))
            .map(|a| a.split("</article>").next().unwrap().to_string());
        match article {
            Some(a) if a.contains("Photo not carried") => Ok(a),
            _ => Err(page),
        }
    })
    .await;
    assert!(!article.contains("<img"), "{article}");
    assert!(article.contains("from Hostile"), "{article}");
    assert!(fake.lock().unwrap().photo_asks >= 1, "B fetched the photo");
    assert_eq!(held(&b, &hh), 2);
    let photos = "SELECT count(*) FROM board_posts WHERE photo IS NOT NULL";
    assert_eq!(sql(&b, photos), 0);
    let line = board_line(&mut cb, &hh).await;
    assert!(line.contains("1 photos not carried"), "{line}");
    println!("f. lying photo: B shows the text with \"Photo not carried\", no image");
    pic.seq = 3;
    pic.photo.as_mut().unwrap().kind = "exe".into();
    let raw = Case::Raw(reply(vec![wire(&signer, &pic)], certs.clone(), false));
    refuse(&mut cb, &b, &fake, raw, "cannot be one", "f. exe photo").await;

    // g. More events than asked for.
    let hlc = now_ms() << 16;
    let flood: Vec<WireEvent> = (3..3 + FLOOD)
        .map(|seq| {
            let mut e = body(&hh, seq, &format!("flood {seq}"));
            e.hlc = hlc + seq as i64;
            wire(&signer, &e)
        })
        .collect();
    let over = Case::Oversend(flood[..=MAX_BATCH].to_vec());
    refuse(&mut cb, &b, &fake, over, "were asked for", "g. too many").await;

    // g. The flood. B restarts first, so its per-minute window for H opens
    // with the flood and the 20 s watched lie inside that one window.
    b.kill();
    {
        let mut f = fake.lock().unwrap();
        f.log.extend(flood);
        f.case = Case::Honest;
        (f.asks, f.max_limit) = (0, 0);
    }
    // The window opens at B's first pull after it starts, so after this.
    let restarting = Instant::now();
    b.start(&link.a_ip);
    let flood_rows = || held(&b, &hh) - 2;
    let mut slowest = Duration::ZERO;
    while restarting.elapsed() < Duration::from_secs(21) {
        let t = Instant::now();
        let dash = tokio::time::timeout(Duration::from_secs(10), cb.get("/admin"))
            .await
            .expect("the dashboard answers during the flood");
        assert_eq!(dash.status, 200, "{}", dash.body);
        let page = tokio::time::timeout(Duration::from_secs(10), posts(&b.url))
            .await
            .expect("the board answers during the flood");
        assert!(!page.is_empty());
        slowest = slowest.max(t.elapsed());
        assert!(flood_rows() <= PER_MINUTE, "{} flood events", flood_rows());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored = flood_rows();
    assert!(restarting.elapsed() < Duration::from_secs(60), "one window");
    assert!((1..=PER_MINUTE).contains(&stored), "{stored} of the flood");
    let line = board_line(&mut cb, &hh).await;
    assert!(!line.contains("Refused"), "{line}");
    let counted = between(&line, "Board with Hostile: ", " today").unwrap_or(&line);
    let f = fake.lock().unwrap();
    assert!(f.max_limit <= MAX_BATCH, "B asked for {}", f.max_limit);
    println!(
        "g. flood: B stored {stored} of {FLOOD} in 20 s (budget {PER_MINUTE}/min) over {} asks \
         of at most {} (dashboard: {counted}); its pages answered, slowest pair {slowest:?}",
        f.asks, f.max_limit
    );
    println!("all cases in {:?}", started.elapsed());
}
