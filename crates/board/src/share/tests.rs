//! Two boards over two databases exchanging events directly, without the
//! peer layer (whose signatures are tested in hearth-mirror): numbering,
//! idempotence, forgeries, gaps, retractions, replies that arrive before
//! their thread, and the same order on both sides.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;
use crate::{Board, NewPost};

struct Side {
    _dir: tempfile::TempDir,
    board: Board,
    id: String,
}

fn side(n: u8) -> Side {
    let dir = tempfile::tempdir().unwrap();
    let store = hearth_store::Store::open(&dir.path().join("hearth.db")).unwrap();
    let renderer: crate::Renderer = Arc::new(|p: &crate::Post| format!("<p>{}</p>", p.id));
    let board = Board::new(store, dir.path(), renderer);
    let id = format!("{n:02x}").repeat(32);
    board.set_origin(Origin {
        id: id.clone(),
        name: format!("Hearth {n}"),
        cert: vec![n],
        sign: Arc::new(|body: &[u8]| body.iter().take(4).copied().collect()),
    });
    Side {
        _dir: dir,
        board,
        id,
    }
}

/// Signatures are not this crate's to check (hearth-mirror tests its
/// `verify`); the exchange here runs without.
fn unchecked(_: &str, _: Option<&[u8]>, _: &str, _: &[u8]) -> Result<(), String> {
    Ok(())
}

/// A guest post; each from its own guest and address, so flood control
/// (tested elsewhere) stays out of the way.
async fn post(s: &Side, parent: Option<i64>, text: &str) -> i64 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    s.board
        .post(NewPost {
            board: 1,
            parent,
            guest: Some(format!("g{n}")),
            nickname: "Ana".into(),
            address: format!("10.0.{}.{}", n / 250, n % 250),
            body: text.into(),
            photo: None,
        })
        .await
        .unwrap()
        .id
}

/// `to` pulls everything `from` has for it, as the peer layer would.
async fn pull(from: &Side, to: &Side) -> Ingested {
    let mut total = Ingested::default();
    loop {
        let cursors = to.board.cursors("General").await.unwrap();
        let batch = from
            .board
            .events_after("General", cursors, &to.id, 3)
            .await
            .unwrap();
        let got = to
            .board
            .ingest(&from.id, "General", batch.events, batch.certs, unchecked)
            .await
            .unwrap();
        total.new += got.new;
        total.shown += got.shown;
        total.photos.extend(got.photos);
        if !batch.more {
            return total;
        }
    }
}

/// Every visible post on General as "text" lines, threads in page order,
/// each followed by its replies.
async fn shown(s: &Side) -> Vec<String> {
    let (threads, _) = s.board.threads(1, 0, false).await.unwrap();
    let mut out = vec![];
    for t in threads {
        let body = |p: &crate::Post| p.html.clone();
        out.push(body(&t.post));
        out.extend(t.replies.iter().map(|r| format!("  {}", body(r))));
    }
    out
}

async fn shared_pair() -> (Side, Side) {
    let (a, b) = (side(1), side(2));
    a.board.set_shared(1, true).await.unwrap();
    b.board.set_shared(1, true).await.unwrap();
    (a, b)
}

#[tokio::test]
async fn posts_travel_once_in_order_and_converge() {
    let (a, b) = shared_pair().await;
    let t = post(&a, None, "water at the school from 10:00").await;
    post(&a, Some(t), "thanks").await;
    let got = pull(&a, &b).await;
    assert_eq!((got.new, got.shown), (2, 2));
    assert_eq!(pull(&a, &b).await, Ingested::default(), "idempotent");
    // Apart: each side posts, then they exchange both ways.
    for i in 0..5 {
        post(&a, None, &format!("a{i}")).await;
        post(&b, None, &format!("b{i}")).await;
    }
    let bt = b.board.threads(1, 0, false).await.unwrap().0;
    let their_thread = bt.iter().find(|t| t.post.from.is_some()).unwrap().post.id;
    post(&b, Some(their_thread), "reply from b").await;
    pull(&a, &b).await;
    pull(&b, &a).await;
    let (sa, sb) = (shown(&a).await, shown(&b).await);
    assert_eq!(sa.len(), 13);
    assert_eq!(sa, sb, "the same posts in the same order");
    // A post from elsewhere is marked, never the admin's, and not sent
    // back to its origin.
    let bt = b.board.threads(1, 0, false).await.unwrap().0;
    let remote = bt.iter().find(|t| t.post.from.is_some()).unwrap();
    assert_eq!(remote.post.from.as_deref(), Some("Hearth 1"));
    assert!(!remote.post.by_admin);
    let back = b
        .board
        .events_after("General", Default::default(), &a.id, 200)
        .await
        .unwrap();
    assert!(
        back.events
            .iter()
            .all(|e| !e.body.contains(&a.id) || e.parse().unwrap().origin != a.id)
    );
    assert_eq!(back.events.len(), 6, "only b's own events go to a");
}

#[tokio::test]
async fn forged_gapped_and_malformed_batches_store_nothing() {
    let (a, b) = shared_pair().await;
    for i in 0..3 {
        post(&a, None, &format!("p{i}")).await;
    }
    let batch = a
        .board
        .events_after("General", Default::default(), &b.id, 200)
        .await
        .unwrap();
    // A gap: #2 and #3 without #1.
    let gap = batch.events[1..].to_vec();
    let e = b
        .board
        .ingest(&a.id, "General", gap, batch.certs.clone(), unchecked)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("skips ahead"), "{e}");
    assert!(b.board.cursors("General").await.unwrap().is_empty());
    // Malformed and unknown fields.
    let mut bad = batch.events.clone();
    bad[0].body = bad[0].body.replacen('{', "{\"extra\":1,", 1);
    let e = b
        .board
        .ingest(&a.id, "General", bad, batch.certs.clone(), unchecked)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("malformed"), "{e}");
    // Good, then the same number with other words: a forgery.
    b.board
        .ingest(
            &a.id,
            "General",
            batch.events.clone(),
            batch.certs.clone(),
            unchecked,
        )
        .await
        .unwrap();
    let mut forged = batch.events[..1].to_vec();
    forged[0].body = forged[0].body.replace("p0", "pay me");
    let e = b
        .board
        .ingest(&a.id, "General", forged, batch.certs.clone(), unchecked)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("forgery"), "{e}");
    // An event claiming to be from b itself.
    let mut mine: EventBody = batch.events[0].parse().unwrap();
    mine.origin = b.id.clone();
    mine.seq = 1;
    let claim = WireEvent {
        body: serde_json::to_string(&mine).unwrap(),
        sig: "00".into(),
    };
    let e = b
        .board
        .ingest(
            &a.id,
            "General",
            vec![claim],
            batch.certs.clone(),
            unchecked,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("this Hearth"), "{e}");
    assert_eq!(shown(&b).await.len(), 3);
}

#[tokio::test]
async fn retractions_travel_and_a_reply_waits_for_its_thread() {
    let (a, b) = shared_pair().await;
    let c = side(3);
    c.board.set_shared(1, true).await.unwrap();
    let t = post(&a, None, "looking for my dog").await;
    pull(&a, &b).await;
    // B replies to A's thread; C hears B first, A's thread later.
    let bt = b.board.threads(1, 0, false).await.unwrap().0;
    post(&b, Some(bt[0].post.id), "seen near the mill").await;
    let b_only = b
        .board
        .events_after("General", Default::default(), &c.id, 200)
        .await
        .unwrap();
    let b_events: Vec<WireEvent> = b_only
        .events
        .into_iter()
        .filter(|e| e.parse().unwrap().origin == b.id)
        .collect();
    let got = c
        .board
        .ingest(&b.id, "General", b_events, b_only.certs.clone(), unchecked)
        .await
        .unwrap();
    assert_eq!((got.new, got.shown), (1, 0), "the reply waits");
    let got = pull(&b, &c).await;
    assert_eq!((got.new, got.shown), (1, 2));
    assert_eq!(shown(&c).await, shown(&b).await);
    // A's admin deletes the thread: the retraction reaches B and C.
    a.board.delete(t).await.unwrap();
    pull(&a, &b).await;
    pull(&b, &c).await;
    assert!(shown(&b).await.is_empty());
    assert!(shown(&c).await.is_empty());
    // A hide on B stays on B.
    let t2 = post(&a, None, "generator needs diesel").await;
    pull(&a, &b).await;
    let id = b.board.threads(1, 0, false).await.unwrap().0[0].post.id;
    b.board.hide(id, true).await.unwrap();
    assert!(shown(&b).await.is_empty());
    pull(&b, &c).await;
    assert_eq!(shown(&c).await.len(), 1);
    assert_eq!(shown(&a).await.len(), 1);
    let _ = t2;
}
