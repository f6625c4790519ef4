//! Pairing through the admin pages of two devices in real Chromium: A shows
//! a code and its QR code, B opens the QR's link (as a phone scanning it
//! would, on B's own address), pairs, and both admins confirm.

use fantoccini::{Client, Locator};

use crate::browser::{Driver, arrive, assert_fits, click, fill, shot, text, text_of};
use crate::netns::{Device, Link};

async fn claim(b: &Client, url: &str) {
    b.goto(&format!("{url}/setup")).await.unwrap();
    fill(b, "#password", "a very good password").await;
    fill(b, "#confirm", "a very good password").await;
    click(b, "form button[type=submit]").await;
    arrive(b, "/admin").await;
}

async fn confirm(b: &Client, url: &str, other: &str) {
    b.goto(&format!("{url}/admin/peers")).await.unwrap();
    let page = text(b).await;
    assert!(
        page.contains(other),
        "the other device's fingerprint: {page}"
    );
    click(b, ".peer form button[type=submit]").await;
    arrive(b, "/admin/peers").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_admins_pair_their_devices_with_a_code_and_its_qr_link() {
    let mut a = Device::new("Kitchen", "");
    let mut b = Device::new("Attic", "");
    let link = Link::new(&a.ns, &b.ns);
    a.start(&link.a_ip);
    b.start(&link.b_ip);
    let driver = Driver::start();
    let (ba, bb) = (
        driver.browser(360, 780).await,
        driver.browser(360, 780).await,
    );
    claim(&ba, &a.url).await;
    claim(&bb, &b.url).await;

    // A: show a code; the QR code is drawn.
    ba.goto(&format!("{}/admin/peers", a.url)).await.unwrap();
    click(&ba, "#new-code").await;
    arrive(&ba, "/admin/peers").await;
    let code = text_of(&ba, "#pairing-code").await;
    assert_eq!(code.len(), 8, "{code}");
    let qr = ba.find(Locator::Css("#pairing-qr svg")).await.unwrap();
    let (_, _, w, h) = qr.rectangle().await.unwrap();
    assert!(w >= 150.0 && h >= 150.0, "QR code drawn at {w}x{h}");
    assert_fits(&ba, "pairing code").await;
    shot(&ba, "phone-360-11-peers-code").await;
    let own_a = text_of(&ba, "#own-fingerprint").await;

    // B: the QR's link, opened on B, fills in the join form.
    let qr_link = format!(
        "{}/admin/peers/join?address={}&code={code}",
        b.url, a.peer_addr
    );
    bb.goto(&qr_link).await.unwrap();
    let filled = bb
        .find(Locator::Css("#join-code"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(filled.as_deref(), Some(code.as_str()));
    shot(&bb, "phone-360-12-peers-join").await;
    click(&bb, "#join-button").await;
    arrive(&bb, "/admin/peers").await;
    let page = text(&bb).await;
    assert!(page.contains("Paired with Kitchen"), "{page}");
    assert!(page.contains(&own_a), "A's fingerprint, to compare: {page}");
    let own_b = text_of(&bb, "#own-fingerprint").await;

    // Both admins compare fingerprints and confirm.
    confirm(&ba, &a.url, &own_b).await;
    confirm(&bb, &b.url, &own_a).await;
    for (browser, other) in [(&ba, "Attic"), (&bb, "Kitchen")] {
        // Headings are upper-cased by the style sheet.
        let page = text(browser).await.to_lowercase();
        assert!(
            page.contains(&other.to_lowercase()) && page.contains("mirror now"),
            "{page}"
        );
    }
    assert_fits(&bb, "peers").await;
    shot(&bb, "phone-360-13-peers-confirmed").await;
    for br in [ba, bb] {
        br.close().await.unwrap();
    }
}
