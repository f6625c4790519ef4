//! The board in real Chromium: two browsers (separate profiles, so two
//! guests) see each other's posts live. Posting without JavaScript (plain
//! form, then redirect) is covered in tests/board.rs: chromedriver itself
//! needs script to find elements, so it cannot drive a script-less page.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::browser::{Driver, arrive, assert_fits, click, fill, shot, submit, text, text_of};
use crate::util::{TestServer, eventually_async};

async fn join(b: &Client, url: &str, name: &str) {
    b.goto(&format!("{url}/")).await.unwrap();
    fill(b, "#nickname-input", name).await;
    // The form posts to "/" and lands on "/" again, so arriving there says
    // nothing: the old page must be gone first. (A click alone let the next
    // `goto` cancel the post in CI, and the board page then asked for a
    // name: "has no post form … it shows: Welcome to this Hearth".)
    submit(b, "#nickname button[type=submit]").await;
    arrive(b, "/").await;
    b.goto(&format!("{url}/boards/1")).await.unwrap();
    // What the page showed instead is printed, so a page without the form
    // is told from a slow one.
    if b.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#post-form"))
        .await
        .is_err()
    {
        panic!(
            "{name}'s board page has no post form after 15 s; it shows: {}",
            text(b).await
        );
    }
}

/// Waits until the page shows `needle`; returns how long that took.
async fn shows(b: &Client, needle: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    eventually_async(limit, &format!("\"{needle}\" to appear"), async || {
        let page = text(b).await;
        if page.contains(needle) {
            Ok(())
        } else {
            Err(page)
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn posts_appear_live_in_another_browser_within_a_second() {
    let server = TestServer::start();
    let url = &server.url;
    let driver = Driver::start();
    let a = driver.browser(360, 780).await;
    let b = driver.browser(360, 780).await;
    join(&a, url, "Ana").await;
    join(&b, url, "Ben").await;
    assert_fits(&a, "board").await;
    // Let both event streams connect before posting. This stays a pause:
    // the page keeps its EventSource to itself and an open stream leaves no
    // trace a test can read, and a post sent before the stream connects
    // still arrives (replayed from the page's `?after=`), so waiting on the
    // post would measure replay, not live delivery.
    tokio::time::sleep(Duration::from_millis(500)).await;

    fill(&a, "#body", "Soup at number 12 at seven, bring a bowl").await;
    click(&a, "#post-form button[type=submit]").await;
    let took = shows(&b, "Soup at number 12", Duration::from_secs(1)).await;
    println!("Ana's post appeared in Ben's browser after {took:?}");
    shows(&a, "Soup at number 12", Duration::from_secs(2)).await;

    // Ben replies in the thread; Ana sees it under her post.
    let reply = b
        .find(Locator::Css(".thread form.reply input[name=body]"))
        .await
        .unwrap();
    reply.send_keys("I'll bring bread").await.unwrap();
    click(&b, ".thread form.reply button[type=submit]").await;
    let took = shows(&a, "I'll bring bread", Duration::from_secs(1)).await;
    println!("Ben's reply appeared in Ana's browser after {took:?}");
    let nested = text_of(&a, ".thread .replies .post.reply").await;
    assert!(nested.contains("I'll bring bread"), "{nested}");
    shot(&a, "phone-360-9-board-ana").await;
    shot(&b, "phone-360-10-board-ben").await;

    for br in [a, b] {
        br.close().await.unwrap();
    }
}

/// Two devices' board pages side by side at 360 px, each device in its own
/// network namespace and sharing General: a post on one appears on the
/// other without a reload, marked with the Hearth it came from.
#[tokio::test(flavor = "multi_thread")]
async fn a_shared_board_shows_the_other_devices_posts_live_in_chromium() {
    let (ha, hb, _link, _ca, _cb) = crate::board_share::two_sharing().await;
    let driver = Driver::start();
    let a = driver.browser(360, 780).await;
    let b = driver.browser(360, 780).await;
    join(&a, &ha.url, "Ana").await;
    join(&b, &hb.url, "Ben").await;
    assert_fits(&b, "shared board").await;
    // As above: let both event streams connect first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    fill(&a, "#body", "Water at the school from 10:00").await;
    click(&a, "#post-form button[type=submit]").await;
    let took = shows(&b, "Water at the school", Duration::from_secs(5)).await;
    println!("Ana's post on Alpha appeared in Ben's browser on Beta after {took:?}");
    let marked = text_of(&b, ".thread .post header").await;
    assert!(
        marked.contains("Ana") && marked.contains("from Alpha"),
        "{marked}"
    );

    fill(&b, "#body", "Generator needs diesel").await;
    click(&b, "#post-form button[type=submit]").await;
    let took = shows(&a, "Generator needs diesel", Duration::from_secs(5)).await;
    println!("Ben's post on Beta appeared in Ana's browser on Alpha after {took:?}");
    let page = text(&a).await;
    assert!(page.contains("from Beta"), "{page}");
    assert_eq!(page.matches("Generator needs diesel").count(), 1, "{page}");
    shot(&a, "phone-360-11-shared-board-alpha").await;
    shot(&b, "phone-360-12-shared-board-beta").await;
    for br in [a, b] {
        br.close().await.unwrap();
    }
}
