//! Real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! driven over WebDriver with fantoccini. Screenshots land in
//! `target/screenshots/` for a person to look at.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::util::{TestServer, artefact_dir, eventually, eventually_async};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process on a free loopback port, killed on drop.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub fn start() -> Driver {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: run the README's test command, which installs chromium and chromium-driver"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver prints nothing machine-readable; poll its port.
        eventually(Duration::from_secs(20), "chromedriver to start", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
        });
        Driver { child, url }
    }

    pub async fn browser(&self, width: u32, height: u32) -> Client {
        self.browser_saving_to(width, height, None).await
    }

    /// A browser that saves downloads into `downloads` without asking.
    pub async fn browser_saving_to(
        &self,
        width: u32,
        height: u32,
        downloads: Option<&std::path::Path>,
    ) -> Client {
        let prefs = downloads.map(|dir| {
            json!({
                "download.default_directory": dir.display().to_string(),
                "download.prompt_for_download": false,
            })
        });
        self.browser_with_prefs(width, height, prefs).await
    }

    /// A browser with Chromium preferences, e.g. JavaScript switched off.
    pub async fn browser_with_prefs(
        &self,
        width: u32,
        height: u32,
        prefs: Option<serde_json::Value>,
    ) -> Client {
        let profile = tempfile::tempdir().unwrap().keep();
        let mut caps = serde_json::Map::new();
        // Chromium will not make a window narrower than 500 px, so a phone
        // width needs device emulation rather than a small window.
        let emulation = json!({
            "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "touch": width < 500 }
        });
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "mobileEmulation": emulation,
                "binary": CHROMIUM,

                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        if let Some(prefs) = prefs {
            caps["goog:chromeOptions"]["prefs"] = prefs;
        }
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("chromedriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn fill(b: &Client, css: &str, text: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

pub async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Clicks `css`, a button that submits a form, and waits until the old page
/// has been replaced: an element the new page shares with the old one (a
/// result line shown again) would otherwise be found, and read, on the old
/// page (seen: the previous "Connection failed" read after a second test).
pub async fn submit(b: &Client, css: &str) {
    let old = b.find(Locator::Css("html")).await.unwrap();
    click(b, css).await;
    eventually_async(
        Duration::from_secs(15),
        "the next page",
        async || match old.tag_name().await {
            Err(_) => Ok(()),
            Ok(_) => Err("the old page is still shown"),
        },
    )
    .await;
}

pub async fn path(b: &Client) -> String {
    b.current_url().await.unwrap().path().to_string()
}

/// Waits until the browser has arrived at `expected` (a click on a submit
/// button returns before the POST and its redirect have finished).
pub async fn arrive(b: &Client, expected: &str) {
    let what = format!("the browser to arrive at {expected}");
    eventually_async(Duration::from_secs(15), &what, async || {
        let now = path(b).await;
        let ready = b
            .execute("return document.readyState;", vec![])
            .await
            .unwrap();
        if now == expected && ready == json!("complete") {
            Ok(())
        } else {
            Err(format!("stuck at {now}, document {ready}"))
        }
    })
    .await
}

/// Waits until an element matching `css` exists.
pub async fn appears(b: &Client, css: &str) {
    b.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"));
}

/// The page's main text, once the page has one (see [`text_of`]).
pub async fn text(b: &Client) -> String {
    text_of(b, "main").await
}

/// The text of the element `css`, waiting for it to appear. After a click
/// the next page may still be loading, and an element found on the old page
/// goes stale when the new one replaces it before its text is read (seen in
/// CI), so both steps are retried until the text is read from one page.
pub async fn text_of(b: &Client, css: &str) -> String {
    let what = format!("the text of {css}");
    eventually_async(Duration::from_secs(10), &what, async || {
        let found = b
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        found
            .text()
            .await
            .map_err(|e| format!("cannot read {css}: {e}"))
    })
    .await
}

pub async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(artefact_dir("screenshots").join(format!("{name}.png")), png).unwrap();
}

/// Nothing sticks out sideways: the page reads without horizontal scrolling.
pub async fn assert_fits(b: &Client, what: &str) {
    let fits = b
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "{what} overflows horizontally");
}

/// The whole first-run path, as a person does it, at one width.
async fn first_run(driver: &Driver, width: u32, height: u32, label: &str) {
    // The device clock is two hours behind, as on a Pi after a power cut.
    let server = TestServer::start_with(&["--simulate-clock-offset", "-7200"]);
    let b = driver.browser(width, height).await;

    b.goto(&format!("{}/admin", server.url)).await.unwrap();
    arrive(&b, "/setup").await;
    let viewport = b
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap();
    assert_eq!(viewport, json!(width), "viewport width");
    assert!(text(&b).await.contains("Set up this Hearth"));
    assert_fits(&b, "setup").await;
    shot(&b, &format!("{label}-1-setup")).await;

    fill(&b, "#password", "a very good password").await;
    fill(&b, "#confirm", "a very good password").await;
    click(&b, "form button[type=submit]").await;
    arrive(&b, "/admin").await;
    let dash = text(&b).await;
    for card in ["Uptime", "Load", "Memory", "Disk", "Clock"] {
        assert!(
            dash.to_lowercase().contains(&card.to_lowercase()),
            "{card} on dashboard:\n{dash}"
        );
    }
    assert_fits(&b, "dashboard").await;

    // The clock offer appears, and setting it makes it go away.
    let fix = b.find(Locator::Id("clock-fix")).await.unwrap();
    assert!(
        fix.is_displayed().await.unwrap(),
        "clock offer shown when 2 h behind"
    );
    shot(&b, &format!("{label}-2-dashboard-clock-behind")).await;
    click(&b, "#clock-fix button").await;
    appears(&b, ".notice").await;
    assert!(
        text(&b)
            .await
            .contains("The clock was set from your browser.")
    );
    let fix = b.find(Locator::Id("clock-fix")).await.unwrap();
    assert!(
        !fix.is_displayed().await.unwrap(),
        "offer gone once the clock is right"
    );
    assert!(server.log().contains("clock moved forward by"));

    // Log out, fail once, log in.
    click(&b, ".logout button").await;
    arrive(&b, "/login").await;
    fill(&b, "#password", "wrong password").await;
    click(&b, "main form button[type=submit]").await;
    appears(&b, ".error").await;
    assert!(text(&b).await.contains("That password is not right."));
    shot(&b, &format!("{label}-3-login-wrong")).await;
    fill(&b, "#password", "a very good password").await;
    click(&b, "main form button[type=submit]").await;
    arrive(&b, "/admin").await;
    shot(&b, &format!("{label}-4-dashboard")).await;

    b.close().await.unwrap();
}

#[tokio::test]
async fn claim_login_and_dashboard_in_chromium_at_phone_and_desktop_widths() {
    let driver = Driver::start();
    first_run(&driver, 360, 780, "phone-360").await;
    first_run(&driver, 1280, 900, "desktop-1280").await;
}
