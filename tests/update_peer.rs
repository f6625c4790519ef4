//! Updates from a paired peer (docs/mirror-protocol.md, "Updates from a
//! peer"): three real devices in network namespaces. B runs a newer
//! update signed with a key A trusts, C one signed with a key only C
//! trusts. A's dashboard offers B's and refuses C's; fetching B's stages it
//! over the peer channel, fetching C's is refused and stages nothing; B
//! does not offer A's copy back (it is not newer than what B runs).

use std::{path::Path, time::Duration};

use hearth_mirror::DeviceId;

use crate::{
    bundles::DevKey,
    mirror::{confirm, device_id, mirror_now, pair},
    netns::{Device, Link},
    util::{HEARTH, eventually_async, run_hearth},
};

/// `hearth --config CONFIG update ARGS... --data DATA` for `dev`.
fn update(dev: &Device, args: &[&str]) -> (i32, String, String) {
    let (config, data) = (dev.config_path(), dev.data_dir());
    let mut all = vec!["--config", config.to_str().unwrap(), "update"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data", data.to_str().unwrap()]);
    run_hearth(&all, &[])
}

/// Installs `bundle` on a device that has not started yet, so its first
/// start runs it.
fn install(dev: &Device, bundle: &Path) {
    let (code, out, err) = update(dev, &["install", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "install on {}: {out}{err}", dev.ns.name);
}

/// Names in `DATA/update` and `DATA/update/slots`: what "nothing staged"
/// compares.
fn update_folder(dev: &Device) -> Vec<String> {
    let dir = dev.data_dir().join("update");
    let mut out = Vec::new();
    for sub in [dir.clone(), dir.join("slots")] {
        for e in std::fs::read_dir(&sub).into_iter().flatten().flatten() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("rustls")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn healthz(c: &mut crate::util::Client) -> String {
    c.get("/healthz").await.body.trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_running_a_newer_signed_hearth_offers_it_over_the_peer_channel() {
    let (k1, k2) = (DevKey::new(), DevKey::new());
    let bundles = tempfile::tempdir().unwrap();
    let mut a = Device::new("Alpha", &k1.config());
    let mut b = Device::new("Beta", &k1.config());
    let mut c = Device::new("Gamma", &k2.config());
    install(&b, &k1.hearth_bundle("0.2.0", bundles.path()));
    install(&c, &k2.hearth_bundle("0.3.0", bundles.path()));

    // A listens for peers on all its links, so B and C can reach it back.
    let ab = Link::new(&a.ns, &b.ns);
    let ac = Link::new(&a.ns, &c.ns);
    a.start("0.0.0.0");
    b.start(&ab.b_ip);
    c.start(&ac.b_ip);
    let (mut ca, mut cb, mut cc) = (a.client(), b.client(), c.client());
    let running = env!("CARGO_PKG_VERSION");
    assert_eq!(healthz(&mut ca).await, format!("ok {running}"));
    assert_eq!(healthz(&mut cb).await, "ok 0.2.0", "B runs its update");
    assert_eq!(healthz(&mut cc).await, "ok 0.3.0", "C runs its update");
    ca.claim("alpha admin password").await;
    cb.claim("beta admin password").await;
    cc.claim("gamma admin password").await;

    // B and C show codes, A joins each; all confirm.
    let (ida, idb, idc) = (device_id(&a), device_id(&b), device_id(&c));
    pair(&mut cb, &mut ca, &b.peer_addr, false).await;
    confirm(&mut ca, idb, "1", None).await;
    confirm(&mut cb, ida, "1", None).await;
    pair(&mut cc, &mut ca, &c.peer_addr, false).await;
    confirm(&mut ca, idc, "1", None).await;
    confirm(&mut cc, ida, "1", None).await;

    // A's dashboard: B's update offered, C's refused with the reason.
    let offered = "Hearth at Beta has 0.2.0 — install it?";
    let refused =
        "Gamma offers 0.3.0, refused: the update is signed with a key this Hearth does not trust";
    let page = eventually_async(
        Duration::from_secs(60),
        "A's dashboard to show both offers",
        async || {
            let page = ca.get("/admin").await.body;
            if page.contains(offered) && page.contains(refused) {
                Ok(page)
            } else {
                Err(format!("{page}\nA's log:\n{}", tail(&a.log())))
            }
        },
    )
    .await;
    assert!(
        page.contains("<p class=\"notes\">Hearth 0.2.0</p>"),
        "B's release notes: {page}"
    );
    let form = |id: DeviceId| format!("action=\"/admin/update/from-peer/{}\"", id.to_hex());
    assert!(page.contains(&form(idb)), "a button for B's: {page}");
    assert!(!page.contains(&form(idc)), "no button for C's: {page}");

    // Fetching C's anyway (a stale page, a hand-made form) is refused with
    // the same sentence, and nothing is staged or even downloaded.
    let before = update_folder(&a);
    let r = ca
        .submit(
            "/admin",
            &format!("/admin/update/from-peer/{}", idc.to_hex()),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains(
            "The update was not staged: the update is signed with a key this Hearth does not trust"
        ),
        "{}",
        r.body
    );
    assert_eq!(update_folder(&a), before, "C's refusal left something");
    assert!(!a.data_dir().join("update/staged").exists());
    assert!(!c.log().contains("mirror: sending"), "C sent a file");

    // Fetching B's stages it over the peer channel; the Update page takes
    // over from there.
    let r = ca
        .submit(
            "/admin",
            &format!("/admin/update/from-peer/{}", idb.to_hex()),
            &[],
        )
        .await;
    assert_eq!(r.status, 303, "{}\nA's log:\n{}", r.body, tail(&a.log()));
    assert_eq!(r.location(), Some("/admin/update"));
    assert!(
        b.log().contains("mirror: sending hearth of update 0.2.0"),
        "B sent it: {}",
        tail(&b.log())
    );
    let (code, status, err) = update(&a, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        status.contains("staged: 0.2.0 (signed by the extra key"),
        "{status}"
    );
    let staged = std::fs::read_link(a.data_dir().join("update/staged")).unwrap();
    let program = a.data_dir().join("update").join(staged).join("hearth");
    assert!(
        std::fs::read(&program).unwrap() == std::fs::read(HEARTH).unwrap(),
        "the staged program is the one signed"
    );
    assert_eq!(
        a.log().matches("offers Hearth 0.3.0, refused").count(),
        1,
        "the refusal is logged once"
    );

    // A now offers its staged 0.2.0 too, but B runs 0.2.0: nothing to
    // show there.
    mirror_now(&mut cb, ida).await;
    eventually_async(
        Duration::from_secs(60),
        "B to look at A's offer",
        async || {
            let log = b.log();
            if log.contains("Alpha offers Hearth 0.2.0, not newer than this Hearth's 0.2.0") {
                Ok(())
            } else {
                Err(tail(&log))
            }
        },
    )
    .await;
    let page = cb.get("/admin").await.body;
    assert!(!page.contains("update-offer"), "{page}");
}
