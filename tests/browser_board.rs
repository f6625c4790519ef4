//! The board in real Chromium: two browsers (separate profiles, so two
//! guests) see each other's posts live. Posting without JavaScript (plain
//! form, then redirect) is covered in tests/board.rs: chromedriver itself
//! needs script to find elements, so it cannot drive a script-less page.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::browser::{Driver, arrive, assert_fits, click, fill, shot, text, text_of};
use crate::util::{TestServer, eventually_async};

async fn join(b: &Client, url: &str, name: &str) {
    b.goto(&format!("{url}/")).await.unwrap();
    fill(b, "#nickname-input", name).await;
    click(b, "#nickname button[type=submit]").await;
    arrive(b, "/").await;
    b.goto(&format!("{url}/boards/1")).await.unwrap();
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#post-form"))
        .await
        .unwrap();
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
