//! Boards shared between real devices in network namespaces
//! (docs/board-replication.md): a post on one reaches the other's page and
//! live stream, replies come back, partitions and kill -9 during exchanges
//! converge to the same posts in the same order, posts travel hop by hop
//! without coming back, retractions travel and hides do not.

use std::time::{Duration, Instant};

use reqwest::multipart::Form;

use crate::{
    board::next_event,
    mirror::{confirm, device_id, pair, pair_and_confirm, start_both},
    netns::{Device, Link},
    util::{Client, eventually_async},
};

/// Peers ask each other every second, so a partition heals quickly.
const CONFIG: &str = "board_pull_secs = 1\n";

/// Shares board 1 ("General") from the admin page.
pub(crate) async fn share(c: &mut Client) {
    let r = c
        .submit(
            "/admin/board",
            "/admin/board/boards/1/share",
            &[("on", "1")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

/// Two devices in namespaces, paired, both sharing General.
pub(crate) async fn two_sharing() -> (Device, Device, Link, Client, Client) {
    let (mut a, mut b) = (Device::new("Alpha", CONFIG), Device::new("Beta", CONFIG));
    let (link, mut ca, mut cb) = start_both(&mut a, &mut b).await;
    pair_and_confirm((&a, &b), (&mut ca, &mut cb), ("1", "1")).await;
    share(&mut ca).await;
    share(&mut cb).await;
    (a, b, link, ca, cb)
}

/// The admin posts on board 1 (no flood control for the admin); returns
/// the post's id on this device.
async fn say(c: &mut Client, body: &str, parent: Option<i64>) -> i64 {
    let token = c.get("/boards/1").await.csrf();
    let mut form = Form::new()
        .text("csrf", token)
        .text("body", body.to_string());
    if let Some(p) = parent {
        form = form.text("parent", p.to_string());
    }
    let page = c.post_multipart("/boards/1/posts", form, &[]).await;
    let loc = page
        .location()
        .unwrap_or_else(|| panic!("no redirect: {} {}", page.status, page.body));
    loc.rsplit("#post-").next().unwrap().parse().unwrap()
}

/// Every visible post of board 1 as a guest sees it, in page order
/// (threads, each followed by its replies), over every page: its body
/// and, for posts from elsewhere, "from NAME".
async fn posts(url: &str) -> Vec<String> {
    let mut c = Client::new(url);
    let mut out = vec![];
    for page in 0.. {
        let body = c.get(&format!("/boards/1?page={page}")).await.body;
        for article in body.split("<article").skip(1) {
            let text = crate::mirror::between(article, "class=\"body\">", "</div>")
                .unwrap_or("")
                .trim();
            let from = crate::mirror::between(article, "class=\"from\">", "</span>");
            out.push(match from {
                Some(f) => format!("{text} [{f}]"),
                None => text.to_string(),
            });
        }
        if !body.contains(&format!("page={}", page + 1)) {
            break;
        }
    }
    out
}

/// Waits until both devices show the same `count` posts in the same
/// order, none twice; returns them.
async fn converged(a: &Device, b: &Device, count: usize, what: &str) -> Vec<String> {
    eventually_async(Duration::from_secs(60), what, async || {
        let (pa, pb) = (posts(&a.url).await, posts(&b.url).await);
        let bodies = |p: &[String]| -> Vec<String> {
            p.iter()
                .map(|s| s.split(" [from").next().unwrap_or("").to_string())
                .collect()
        };
        let mut unique = bodies(&pa);
        unique.sort();
        unique.dedup();
        if pa.len() == count && bodies(&pa) == bodies(&pb) && unique.len() == count {
            Ok(pa)
        } else {
            Err(format!(
                "A shows {} posts, B {} ({} distinct on A)\nA: {pa:?}\nB: {pb:?}",
                pa.len(),
                pb.len(),
                unique.len()
            ))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_board_is_live_on_both_devices_and_replies_come_back() {
    let (mut a, mut b) = (Device::new("Alpha", CONFIG), Device::new("Beta", CONFIG));
    let (_link, mut ca, mut cb) = start_both(&mut a, &mut b).await;
    let (ida, idb) = pair_and_confirm((&a, &b), (&mut ca, &mut cb), ("1", "1")).await;
    // A shares General; B's admin sees it offered and accepts it.
    share(&mut ca).await;
    eventually_async(
        Duration::from_secs(20),
        "A's board offered on B",
        async || {
            let page = cb.get("/admin/board").await.body;
            if page.contains("General · shared by Alpha") {
                Ok(())
            } else {
                Err(page)
            }
        },
    )
    .await;
    let r = cb
        .submit(
            "/admin/board",
            "/admin/board/accept",
            &[("name", "General")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = cb.get("/admin/board").await.body;
    assert!(page.contains("shared with peers"), "{page}");

    // A guest's phone on B listens; A's admin posts 50 times.
    let mut stream = crate::util::http()
        .build()
        .unwrap()
        .get(format!("{}/boards/1/events", b.url))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let mut delays = vec![];
    let mut first_frame = String::new();
    for i in 0..50 {
        let text = format!("notice-{i:03}");
        let sent = Instant::now();
        say(&mut ca, &text, None).await;
        let frame = next_event(&mut stream, &mut buf, |f| {
            f.contains("event: post") && f.contains(&format!("{text}<"))
        })
        .await;
        delays.push(sent.elapsed());
        if i == 0 {
            first_frame = frame;
        }
    }
    // Marked with A's name and the fingerprint its Peers page shows (a
    // name anyone can choose; the fingerprint nobody else can have).
    assert!(first_frame.contains("from Alpha"), "{first_frame}");
    assert!(first_frame.contains(&ida.short()), "{first_frame}");
    delays.sort();
    println!(
        "post on A to live event on B, 50 posts: median {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );

    // B replies to A's first notice; it shows on A, marked, once.
    let on_b: i64 = crate::mirror::between(&first_frame, "data-post=\"", "\"")
        .unwrap()
        .parse()
        .unwrap();
    say(&mut cb, "reply-from-beta", Some(on_b)).await;
    let shown = eventually_async(Duration::from_secs(20), "B's reply on A", async || {
        let p = posts(&a.url).await;
        if p.iter().any(|s| s == "reply-from-beta [from Beta]") {
            Ok(p)
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;
    assert_eq!(
        shown
            .iter()
            .filter(|s| s.starts_with("reply-from-beta"))
            .count(),
        1
    );
    // The reply sits under A's first notice on A.
    let at = shown.iter().position(|s| s == "notice-000").unwrap();
    assert_eq!(shown[at + 1], "reply-from-beta [from Beta]", "{shown:?}");
    converged(&a, &b, 51, "both to show the same 51 posts").await;

    // A's Peers card counts what went each way.
    let dash = ca.get("/admin").await.body;
    let card = crate::mirror::between(
        &dash,
        &format!("id=\"board-link-{}\">", idb.to_hex()),
        "</p>",
    )
    .unwrap_or_else(|| panic!("no board line for B: {dash}"))
    .to_string();
    assert!(
        card.contains("Board with Beta: 1 in · 50 out today"),
        "{card}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_and_kill_9_mid_exchange_converge_to_the_same_order() {
    let (mut a, mut b, link, mut ca, mut cb) = two_sharing().await;

    // Apart: 20 posts on each side, then the link comes back.
    link.set_up(&a.ns, false);
    for i in 0..20 {
        say(&mut ca, &format!("apart-a-{i:02}"), None).await;
        say(&mut cb, &format!("apart-b-{i:02}"), None).await;
    }
    let alone = posts(&a.url).await;
    assert_eq!(alone.len(), 20, "A sees only its own while apart");
    link.set_up(&a.ns, true);
    let order = converged(&a, &b, 40, "the partition to heal").await;
    println!(
        "after the partition both show 40 posts, first {:?}",
        &order[..2]
    );

    // kill -9 either side at a random point of an exchange, 10 rounds.
    let mut dice = crate::util::Dice::new("board kill rounds");
    let mut total = 40;
    for round in 0..10 {
        for i in 0..5 {
            say(&mut ca, &format!("r{round}-a-{i}"), None).await;
            say(&mut cb, &format!("r{round}-b-{i}"), None).await;
        }
        total += 10;
        tokio::time::sleep(Duration::from_millis(dice.below(400))).await;
        let (victim, ip) = if dice.below(2) == 0 {
            (&mut a, link.a_ip.clone())
        } else {
            (&mut b, link.b_ip.clone())
        };
        victim.kill();
        victim.start(&ip);
        converged(&a, &b, total, &format!("round {round} to converge")).await;
    }
    println!("10 kill rounds: both show the same {total} posts in the same order");
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_travel_hop_by_hop_retractions_follow_and_hides_stay_local() {
    let mut a = Device::new("Alpha", CONFIG);
    let mut b = Device::new("Beta", CONFIG);
    let mut c = Device::new("Gamma", CONFIG);
    // B is between A and C, which are not linked at all.
    let ab = Link::new(&a.ns, &b.ns);
    let bc = Link::new(&b.ns, &c.ns);
    a.start(&ab.a_ip);
    b.start("0.0.0.0");
    c.start(&bc.b_ip);
    let (mut ca, mut cb, mut cc) = (a.client(), b.client(), c.client());
    ca.claim("alpha admin password").await;
    cb.claim("beta admin password").await;
    cc.claim("gamma admin password").await;
    let (ida, idb, idc) = (device_id(&a), device_id(&b), device_id(&c));
    pair(&mut ca, &mut cb, &a.peer_addr, false).await;
    confirm(&mut ca, idb, "1", None).await;
    confirm(&mut cb, ida, "1", None).await;
    pair(&mut cc, &mut cb, &c.peer_addr, false).await;
    confirm(&mut cc, idb, "1", None).await;
    confirm(&mut cb, idc, "1", None).await;
    for client in [&mut ca, &mut cb, &mut cc] {
        share(client).await;
    }
    // C's admin lets no photos in from peers (Board page); a figure out of
    // range is refused and changes nothing.
    let r = cc
        .submit("/admin/board", "/admin/board/photo-budget", &[("mib", "0")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = cc
        .submit(
            "/admin/board",
            "/admin/board/photo-budget",
            &[("mib", "99999")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("0 to 10000 MiB"), "{}", r.body);
    let page = cc.get("/admin/board").await.body;
    assert!(
        page.contains("name=\"mib\" min=\"0\" max=\"10000\" value=\"0\""),
        "{page}"
    );

    // A's post reaches C through B; C's reply reaches A; each once.
    let on_a = say(&mut ca, "hop-from-alpha", None).await;
    let seen = |url: String, want: &'static str| async move {
        eventually_async(Duration::from_secs(30), want, async || {
            let p = posts(&url).await;
            if p.iter().any(|s| s == want) {
                Ok(p)
            } else {
                Err(format!("{p:?}"))
            }
        })
        .await
    };
    seen(c.url.clone(), "hop-from-alpha [from Alpha]").await;
    let page = cc.get("/boards/1").await.body;
    let on_c: i64 = page
        .split("<article")
        .find(|a| a.contains("hop-from-alpha"))
        .and_then(|a| crate::mirror::between(a, "data-post=\"", "\""))
        .unwrap()
        .parse()
        .unwrap();
    say(&mut cc, "hop-reply-from-gamma", Some(on_c)).await;
    let on_a_page = seen(a.url.clone(), "hop-reply-from-gamma [from Gamma]").await;
    for (name, p) in [("A", on_a_page), ("C", posts(&c.url).await)] {
        for text in ["hop-from-alpha", "hop-reply-from-gamma"] {
            assert_eq!(
                p.iter().filter(|s| s.starts_with(text)).count(),
                1,
                "{text} once on {name}: {p:?}"
            );
        }
    }
    // Nothing went back to where it came from: B sent A only C's reply,
    // and C only A's post.
    let dash = cb.get("/admin").await.body;
    for (peer, line) in [
        (ida, "Board with Alpha: 1 in · 1 out today"),
        (idc, "Board with Gamma: 1 in · 1 out today"),
    ] {
        let card = crate::mirror::between(
            &dash,
            &format!("id=\"board-link-{}\">", peer.to_hex()),
            "</p>",
        )
        .unwrap_or("")
        .to_string();
        assert!(card.contains(line), "{line}: {card}");
    }

    // A's admin deletes the post: it goes on B and C, reply and all.
    let r = ca
        .submit(
            "/admin/board",
            &format!("/admin/board/posts/{on_a}/delete"),
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
    for dev in [&b, &c] {
        eventually_async(Duration::from_secs(30), "the retraction", async || {
            let p = posts(&dev.url).await;
            if p.iter().any(|s| s.starts_with("hop-")) {
                Err(format!("{p:?}"))
            } else {
                Ok(())
            }
        })
        .await;
    }

    // A photo travels within the budget (A to B) and not beyond it (B to
    // C): the post arrives on C with "Photo not carried".
    let token = ca.get("/boards/1").await.csrf();
    let form = Form::new()
        .text("csrf", token)
        .text("body", "photo-of-the-bridge")
        .part(
            "photo",
            reqwest::multipart::Part::bytes(crate::board::png_with_gps())
                .file_name("bridge.png")
                .mime_str("image/png")
                .unwrap(),
        );
    assert_eq!(
        ca.post_multipart("/boards/1/posts", form, &[]).await.status,
        303
    );
    let photo_on = |url: String| async move {
        eventually_async(Duration::from_secs(30), "the photo post", async || {
            let page = Client::new(&url).get("/boards/1").await.body;
            match page
                .split("<article")
                .find(|a| a.contains("photo-of-the-bridge"))
            {
                Some(a) if a.contains("<img") || a.contains("not carried") => Ok(a.to_string()),
                _ => Err(page),
            }
        })
        .await
    };
    let on_b = photo_on(b.url.clone()).await;
    let src = crate::mirror::between(&on_b, "<img src=\"", "\"").expect("B shows the photo");
    let thumb = Client::new(&b.url).get_bytes(src).await;
    assert_eq!(thumb.0, 200, "B serves the carried photo's thumbnail");
    assert!(thumb.2.starts_with(&[0xff, 0xd8]), "a JPEG thumbnail");
    let on_c = photo_on(c.url.clone()).await;
    assert!(
        on_c.contains("Photo not carried") && !on_c.contains("<img"),
        "{on_c}"
    );
    let dash = cc.get("/admin").await.body;
    assert!(dash.contains("1 photos not carried"), "{dash}");

    // A hide on B stays on B.
    say(&mut ca, "diesel-needed", None).await;
    seen(c.url.clone(), "diesel-needed [from Alpha]").await;
    let page = cb.get("/admin/board").await.body;
    let on_b: i64 = page
        .split("class=\"mod-post\"")
        .find(|p| p.contains("diesel-needed"))
        .and_then(|p| crate::mirror::between(p, "id=\"mod-", "\""))
        .unwrap()
        .parse()
        .unwrap();
    let r = cb
        .submit(
            "/admin/board",
            &format!("/admin/board/posts/{on_b}/hide"),
            &[("on", "1")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(!posts(&b.url).await.iter().any(|s| s.starts_with("diesel")));
    say(&mut ca, "after-the-hide", None).await;
    seen(c.url.clone(), "after-the-hide [from Alpha]").await;
    for dev in [&a, &c] {
        let p = posts(&dev.url).await;
        assert!(p.iter().any(|s| s.starts_with("diesel-needed")), "{p:?}");
    }
    println!(
        "three devices: hop by hop both ways, retraction on B and C, photo carried to B and not to C, hide on B only"
    );
}
