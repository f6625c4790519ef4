//! Two devices on one LAN: finding each other over mDNS, and a backup that
//! starts a mirror run on its own, within the bandwidth limit.

use std::time::{Duration, Instant};

use hearth_mirror::DeviceId;

use crate::{
    mirror::{
        between, confirm, device_id, fill_files, held_packs, init_backups, mirror_now, own_packs,
        pair, pair_and_confirm, random_bytes, start_both, wait_for_page, wait_mirrored,
    },
    netns::Device,
    util::eventually_async,
};

#[tokio::test(flavor = "multi_thread")]
async fn hearths_find_each_other_on_the_lan_and_pair_from_the_list() {
    let mut a = Device::new("Alpha", "");
    let mut b = Device::new("Beta", "");
    let (_link, mut ca, mut cb) = start_both(&mut a, &mut b).await;
    let (ida, idb) = (device_id(&a), device_id(&b));

    // Each lists the other (by name, fingerprint and peer address), never
    // itself.
    let listing = |id: DeviceId, addr: &str| {
        format!(
            "<code>{}</code> at {addr} · <a href=\"/admin/peers/join?address={}#join\">",
            id.short(),
            addr.replace(':', "%3A")
        )
    };
    wait_for_page(
        &mut cb,
        "/admin/peers",
        &listing(ida, &a.peer_addr),
        Duration::from_secs(30),
    )
    .await;
    wait_for_page(
        &mut ca,
        "/admin/peers",
        &listing(idb, &b.peer_addr),
        Duration::from_secs(30),
    )
    .await;
    for (c, own) in [(&mut ca, ida), (&mut cb, idb)] {
        let page = c.get("/admin/peers").await.body;
        let list = between(&page, "id=\"nearby\">", "</ul>").expect("a list");
        assert!(!list.contains(&own.short()), "lists itself: {list}");
    }

    // `hearth discover`, run beside B's service, lists both (it announces
    // nothing itself).
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &b.ns.name, crate::util::HEARTH])
        .args(["discover", "--seconds", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for (name, id, addr) in [("Alpha", ida, &a.peer_addr), ("Beta", idb, &b.peer_addr)] {
        assert!(
            text.contains(&format!("{name}\t{}\t{addr}\n", id.short())),
            "{name} missing: {text}"
        );
    }
    assert_eq!(text.lines().count(), 2, "{text}");

    // B's admin picks A from the list: the Join form comes back filled in,
    // and pairing with A's code through that address works.
    let link = format!(
        "/admin/peers/join?address={}",
        a.peer_addr.replace(':', "%3A")
    );
    let form = cb.get(&link).await.body;
    assert!(
        form.contains(&format!("name=\"address\" value=\"{}\"", a.peer_addr)),
        "the address is filled in: {form}"
    );
    pair(&mut ca, &mut cb, &a.peer_addr, false).await;
    confirm(&mut ca, idb, "1", None).await;
    confirm(&mut cb, ida, "1", None).await;

    // Paired devices are no longer offered for joining.
    let page = cb.get("/admin/peers").await.body;
    assert!(!page.contains("id=\"nearby\""), "{page}");
    assert!(page.contains("id=\"nearby-none\""), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_starts_a_mirror_run_that_keeps_to_the_bandwidth_limit() {
    // 2 MiB/s; the schedule (60 minutes) cannot be what starts the run.
    let mut a = Device::new("Alpha", "mirror_bandwidth_kib = 2048\n");
    fill_files(&a, 1, 1, 40);
    init_backups(&a);
    let mut b = Device::new("Beta", "");
    let (_link, mut ca, mut cb) = start_both(&mut a, &mut b).await;
    let (ida, idb) = pair_and_confirm((&a, &b), (&mut ca, &mut cb), ("1", "1")).await;
    mirror_now(&mut ca, idb).await;
    wait_mirrored(&a, &b, ida, Duration::from_secs(60)).await;

    // 8 MiB of new data, backed up from the admin page; nobody presses
    // "Mirror now".
    std::fs::write(a.files_dir().join("new"), random_bytes(8 << 20, 41)).unwrap();
    let start = Instant::now();
    let r = ca.submit("/admin/backups", "/admin/backups/run", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    // The backup runs in the background: first its new pack appears at A.
    let before = held_packs(&b, ida).len();
    eventually_async(Duration::from_secs(60), "a new pack at A", async || {
        let now = own_packs(&a).len();
        if now > before {
            Ok(())
        } else {
            Err(format!("{now} packs, {before} before"))
        }
    })
    .await;
    wait_mirrored(&a, &b, ida, Duration::from_secs(90)).await;
    let took = start.elapsed();
    // At 2 MiB/s the 8 MiB pack alone needs 4 s; a lower bound only (a slow
    // machine makes it longer, never shorter).
    assert!(
        took >= Duration::from_secs(3),
        "8 MiB arrived in {took:?}, faster than the 2 MiB/s limit"
    );
}
