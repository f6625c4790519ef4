//! The hotspot board through the real server: names, posts, replies,
//! escaping, photos, live events with replay, search, pagination,
//! moderation and bad input.

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};

use crate::util::{Client, TestServer};

/// A guest with a name, ready to post.
async fn guest(server: &TestServer, name: &str) -> Client {
    guest_at(server, name, [127, 0, 0, 1]).await
}

/// A guest on another device (another loopback address).
async fn guest_at(server: &TestServer, name: &str, ip: [u8; 4]) -> Client {
    let mut c = Client::from_address(&server.url, ip.into());
    let p = c
        .submit(
            "/",
            "/nickname",
            &[("nickname", name), ("back", "/boards/1")],
        )
        .await;
    assert_eq!(p.location(), Some("/boards/1"), "{}", p.body);
    c
}

/// Posts on board 1 the way the page's form does: the token first.
async fn post(c: &mut Client, body: &str, parent: Option<i64>) -> crate::util::Page {
    let token = c.get("/boards/1").await.csrf();
    let mut form = Form::new()
        .text("csrf", token)
        .text("body", body.to_string());
    if let Some(p) = parent {
        form = form.text("parent", p.to_string());
    }
    c.post_multipart("/boards/1/posts", form, &[]).await
}

fn post_id(p: &crate::util::Page) -> i64 {
    let loc = p
        .location()
        .unwrap_or_else(|| panic!("no redirect: {} {}", p.status, p.body));
    loc.rsplit("#post-").next().unwrap().parse().unwrap()
}

fn count(server: &TestServer, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .arg(server.data_dir().join("hearth.db"))
        .arg(sql)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A PNG whose tEXt chunk says where it was taken.
pub(crate) fn png_with_gps() -> Vec<u8> {
    // 2x2 RGB PNG, then a tEXt chunk spliced in after IHDR.
    let base: Vec<u8> = {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |v: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut c = kind.to_vec();
            c.extend_from_slice(data);
            v.extend_from_slice(&c);
            v.extend_from_slice(&crc32(&c).to_be_bytes());
        };
        chunk(&mut v, b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
        chunk(&mut v, b"tEXt", b"Comment\0GPS 51.4769N 0.0005W");
        // zlib stream of two scanlines: filter 0 + 6 bytes each, stored.
        let raw = [0u8, 255, 0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255];
        let mut z = vec![0x78, 0x01, 0x01];
        z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
        z.extend_from_slice(&raw);
        z.extend_from_slice(&adler32(&raw).to_be_bytes());
        chunk(&mut v, b"IDAT", &z);
        chunk(&mut v, b"IEND", &[]);
        v
    };
    base
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for x in data {
        a = (a + u32::from(*x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

#[tokio::test]
async fn guests_post_reply_attach_photos_and_search() {
    let server = TestServer::start();
    let mut anon = server.client();
    let landing = anon.get("/").await;
    assert_eq!(landing.status, 200);
    for text in [
        "Welcome to this Hearth",
        "General",
        "Announcements",
        "Continue in the browser",
    ] {
        assert!(landing.body.contains(text), "{text}");
    }

    // Names: refused with a reason, nothing stored.
    for (bad, why) in [
        ("a\u{7}b", "control"),
        ("Adm1n", "kept for"),
        ("", "Choose a name"),
    ] {
        let p = anon.submit("/", "/nickname", &[("nickname", bad)]).await;
        assert_eq!(p.status, 400, "{bad:?}");
        assert!(p.body.contains(why), "{bad:?}: {}", p.body);
    }
    assert_eq!(count(&server, "SELECT count(*) FROM board_guests"), "0");
    // No name, no post; no token, no post.
    let p = post(&mut anon, "hello", None).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("Choose a name"));

    let mut ana = guest(&server, "Ana").await;
    let form = Form::new().text("body", "no token");
    assert_eq!(
        ana.post_multipart("/boards/1/posts", form, &[])
            .await
            .status,
        403
    );
    let p = ana
        .post_raw(
            "/boards/1/posts",
            "multipart/form-data; boundary=B",
            b"--B\r\nbroken".to_vec(),
        )
        .await;
    assert!(p.status == 400 || p.status == 403, "{}", p.status);
    assert_eq!(post(&mut ana, "   ", None).await.status, 400, "empty post");
    let long = post(&mut ana, &"x".repeat(4001), None).await;
    assert_eq!(long.status, 400);
    assert!(long.body.contains("at most 4000 characters"));
    assert_eq!(count(&server, "SELECT count(*) FROM board_posts"), "0");

    // A thread, escaped, with a clickable link; a reply under it.
    let thread = post_id(
        &post(
            &mut ana,
            "<script>alert(1)</script> see https://example.org/x?a=1&b=2",
            None,
        )
        .await,
    );
    let mut ben = guest(&server, "Ben").await;
    let reply = post_id(&post(&mut ben, "Hi Ana, lanterns tonight?", Some(thread)).await);
    let page = ben.get("/boards/1").await.body;
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert(1)"));
    assert!(page.contains(
        "<a href=\"https://example.org/x?a=1&amp;b=2\" rel=\"noopener noreferrer nofollow\""
    ));
    assert!(page.contains(&format!(
        "id=\"post-{reply}\" data-post=\"{reply}\" data-parent=\"{thread}\""
    )));
    assert_eq!(post(&mut ben, "stray", Some(9999)).await.status, 404);

    // Photos: typed by content, metadata stripped, thumbnail served.
    let png = png_with_gps();
    let token = ana.get("/boards/1").await.csrf();
    let form = Form::new()
        .text("csrf", token.clone())
        .text("body", "the view")
        .part(
            "photo",
            Part::bytes(png.clone())
                .file_name("view.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let p = ana.post_multipart("/boards/1/posts", form, &[]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let name = count(
        &server,
        "SELECT photo FROM board_posts WHERE photo IS NOT NULL",
    );
    let (status, headers, stored) = ana.get_bytes(&format!("/photos/{name}")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    assert!(
        !stored.windows(3).any(|w| w == b"GPS"),
        "GPS metadata stripped"
    );
    let thumb = name.replace(".png", ".thumb.jpg");
    let (status, headers, _) = ana.get_bytes(&format!("/photos/{thumb}")).await;
    assert_eq!(
        (status.as_u16(), headers["content-type"].to_str().unwrap()),
        (200, "image/jpeg")
    );
    assert_eq!(ana.get_bytes("/photos/..%2Fhearth.db").await.0, 404);
    for (bytes, file, why) in [
        (
            png.clone(),
            "disguised.jpg",
            "says it is JPG but its content is PNG",
        ),
        (
            b"just some text".to_vec(),
            "fake.png",
            "Only JPEG, PNG and WebP",
        ),
    ] {
        let form = Form::new()
            .text("csrf", token.clone())
            .text("body", "x")
            .part("photo", Part::bytes(bytes).file_name(file));
        let p = ana.post_multipart("/boards/1/posts", form, &[]).await;
        assert_eq!(p.status, 400, "{file}");
        assert!(p.body.contains(why), "{file}: {}", p.body);
    }
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM board_posts WHERE photo IS NOT NULL"
        ),
        "1"
    );
    let files = std::fs::read_dir(server.data_dir().join("board/photos"))
        .unwrap()
        .count();
    assert_eq!(
        files, 2,
        "one photo and its thumbnail; refused ones left nothing"
    );

    // Search, including text that is FTS5 syntax.
    let found = ben.get("/search?q=lanterns").await.body;
    assert!(found.contains("Hi Ana, lanterns tonight?"), "{found}");
    assert!(found.contains(&format!("/boards/1/threads/{thread}#post-{reply}")));
    for q in ["\"unbalanced", "a OR", "NEAR(", "*"] {
        assert_eq!(
            ben.get(&format!("/search?q={}", crate::board::enc(q)))
                .await
                .status,
            200,
            "{q}"
        );
    }
}

pub fn enc(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Reads SSE frames from a streaming response until `pred` matches one.
pub(crate) async fn next_event(
    resp: &mut reqwest::Response,
    buf: &mut String,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if pred(&frame) {
                return frame;
            }
        }
        let chunk = tokio::time::timeout_at(deadline.into(), resp.chunk())
            .await
            .expect("event within 10 s")
            .unwrap()
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn live_events_arrive_and_are_replayed_after_a_reconnect() {
    let server = TestServer::start();
    let mut ana = guest(&server, "Ana").await;
    let http = crate::util::http().build().unwrap();
    let mut stream = http
        .get(format!("{}/boards/1/events", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    let sent = Instant::now();
    let id = post_id(&post(&mut ana, "first live post", None).await);
    let frame = next_event(&mut stream, &mut buf, |f| f.contains("first live post")).await;
    println!("a post reached a listener after {:?}", sent.elapsed());
    assert!(frame.contains("event: post"), "{frame}");
    let seen: i64 = frame
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .parse()
        .unwrap();
    drop(stream);

    // Two posts while disconnected; the reconnect replays both, in order.
    post(&mut ana, "missed one", Some(id)).await;
    post(&mut ana, "missed two", None).await;
    let mut stream = http
        .get(format!("{}/boards/1/events", server.url))
        .header("Last-Event-ID", seen.to_string())
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let one = next_event(&mut stream, &mut buf, |f| f.contains("event: post")).await;
    let two = next_event(&mut stream, &mut buf, |f| f.contains("event: post")).await;
    assert!(
        one.contains("missed one") && one.contains(&format!("data-parent=\"{id}\"")),
        "{one}"
    );
    assert!(two.contains("missed two"), "{two}");
    assert_eq!(server.client().get("/boards/99/events").await.status, 404);
}

#[tokio::test]
async fn the_admin_moderates_and_every_action_is_logged() {
    let server = TestServer::start();
    let mut admin = server.client();
    assert_eq!(admin.claim("moderator password").await.status, 303);
    let mut eve = guest_at(&server, "Eve", [127, 0, 0, 2]).await;
    let spam = post_id(&post(&mut eve, "buy things", None).await);
    let mut ana = guest(&server, "Ana").await;
    let notice = post_id(&post(&mut ana, "Lost cat, grey, answers to Mo", None).await);

    let act = |path: String, form: Vec<(&'static str, String)>| (path, form);
    let actions = [
        act(
            format!("/admin/board/posts/{notice}/pin"),
            vec![("on", "1".into())],
        ),
        act(
            format!("/admin/board/posts/{spam}/hide"),
            vec![("on", "1".into())],
        ),
        act(
            format!("/admin/board/posts/{spam}/ban"),
            vec![("reason", "spam".into())],
        ),
        act(
            "/admin/board/boards/1/slow".into(),
            vec![("secs", "60".into())],
        ),
        act(
            "/admin/board/boards/2/lock".into(),
            vec![("locked", "0".into())],
        ),
        act(
            "/admin/board/boards".into(),
            vec![("name", "Lost and found".into())],
        ),
        act(
            "/admin/board/landing".into(),
            vec![
                ("title", "The Green Street Hearth".into()),
                ("welcome", "Be kind.".into()),
            ],
        ),
    ];
    for (path, form) in &actions {
        let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let p = admin.submit("/admin/board", path, &fields).await;
        assert_eq!(
            p.location(),
            Some("/admin/board?done=1"),
            "{path}: {}",
            p.body
        );
    }
    // Without the token, nothing happens.
    assert_eq!(
        admin
            .post(&format!("/admin/board/posts/{notice}/delete"), &[])
            .await
            .status,
        403
    );

    let landing = ana.get("/").await.body;
    assert!(landing.contains("The Green Street Hearth") && landing.contains("Be kind."));
    assert!(
        landing.contains("Lost cat"),
        "pinned notice on the landing page"
    );
    assert!(landing.contains("Lost and found"));
    let board = ana.get("/boards/1").await.body;
    assert!(!board.contains("buy things"), "hidden");
    assert!(board.contains("Slow mode: one post every 60 seconds."));
    // Banned: by cookie, and a fresh name from the same address too.
    assert_eq!(post(&mut eve, "again", None).await.status, 403);
    let mut eve2 = guest_at(&server, "Not Eve", [127, 0, 0, 2]).await;
    let p = post(&mut eve2, "it's me again", None).await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("cannot post"), "{}", p.body);
    // Slow mode: a second post within the minute is refused with a wait.
    let p = post(&mut ana, "one more", None).await;
    assert_eq!(p.status, 429);
    assert!(p.body.contains("Slow mode is on"), "{}", p.body);
    assert!(p.headers.contains_key("retry-after"));

    let log = admin.get("/admin/board").await.body;
    for line in [
        "pin",
        "hide",
        "ban",
        "slow mode",
        "create board",
        "landing text",
    ] {
        assert!(log.contains(&format!(" · {line} · ")), "{line} logged");
    }
    let p = admin
        .submit(
            "/admin/board",
            &format!("/admin/board/posts/{spam}/delete"),
            &[],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(
        count(
            &server,
            &format!("SELECT count(*) FROM board_posts WHERE id = {spam}")
        ),
        "0"
    );
    assert!(
        admin
            .get("/admin/board")
            .await
            .body
            .contains(" · delete · post")
    );
}

#[tokio::test]
async fn floods_are_limited_and_boards_page_and_lock() {
    let server = TestServer::start();
    let mut admin = server.client();
    admin.claim("moderator password").await;
    let mut ana = guest(&server, "Ana").await;
    for i in 0..5 {
        assert_eq!(
            post(&mut ana, &format!("thread {i}"), None).await.status,
            303
        );
    }
    let p = post(&mut ana, "one too many", None).await;
    assert_eq!(p.status, 429);
    assert!(p.body.contains("posting too fast"), "{}", p.body);

    // The admin is not rate limited: 25 threads make two pages.
    for i in 0..20 {
        assert_eq!(
            post(&mut admin, &format!("notice {i}"), None).await.status,
            303
        );
    }
    let first = ana.get("/boards/1").await.body;
    assert_eq!(first.matches("class=\"thread").count(), 20);
    assert!(first.contains("?page=1\">Older</a>"));
    let second = ana.get("/boards/1?page=1").await.body;
    assert_eq!(second.matches("class=\"thread").count(), 5);
    assert!(second.contains("thread 0"), "oldest last");

    // A locked board takes only the admin's posts.
    admin
        .submit(
            "/admin/board",
            "/admin/board/boards/1/lock",
            &[("locked", "1")],
        )
        .await;
    let mut ben = guest(&server, "Ben").await;
    let p = post(&mut ben, "can I?", None).await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("locked"));
    assert_eq!(post(&mut admin, "announcement", None).await.status, 303);
}

#[tokio::test]
async fn captive_portal_probes_get_their_designed_answers() {
    let server = TestServer::start();
    let http = crate::util::http()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let home = format!("{}/", server.url);
    let probes = [
        ("connectivitycheck.gstatic.com", "/generate_204", 204, ""),
        ("clients3.google.com", "/generate_204", 204, ""),
        ("www.google.com", "/gen_204", 204, ""),
        (
            "www.apple.com",
            "/library/test/success.html",
            200,
            "<BODY>Success</BODY>",
        ),
        (
            "captive.apple.com",
            "/hotspot-detect.html",
            200,
            "<BODY>Success</BODY>",
        ),
        (
            "www.msftconnecttest.com",
            "/connecttest.txt",
            200,
            "Microsoft Connect Test",
        ),
        ("www.msftncsi.com", "/ncsi.txt", 200, "Microsoft NCSI"),
        ("detectportal.firefox.com", "/success.txt", 200, "success\n"),
        (
            "detectportal.firefox.com",
            "/canonical.html",
            200,
            "captive-portal",
        ),
    ];
    let get = |host: &'static str, path: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}", server.url);
        async move { http.get(url).header("host", host).send().await.unwrap() }
    };
    // Before "Continue": every probe opens the portal on the landing page.
    for (host, path, _, _) in probes {
        let r = get(host, path).await;
        assert_eq!(r.status(), 302, "{host}{path}");
        assert_eq!(r.headers()["location"], home.as_str(), "{host}{path}");
    }
    // Any other name is sent to the landing page; our own address is served.
    let r = get("example.org", "/some/page").await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (302, home.as_str())
    );
    assert_eq!(http.get(&home).send().await.unwrap().status(), 200);

    // After "Continue", the same client gets each platform's success answer.
    let mut c = server.client();
    let p = c.submit("/", "/portal/continue", &[]).await;
    assert!(p.body.contains("You're connected"), "{}", p.body);
    for (host, path, status, body) in probes {
        let r = get(host, path).await;
        assert_eq!(r.status().as_u16(), status, "{host}{path}");
        assert!(r.text().await.unwrap().contains(body), "{host}{path}");
    }
}
