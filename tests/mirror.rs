use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use hearth_mirror::DeviceId;

use crate::{
    netns::{Device, Link},
    util::{Client, eventually_async, run_backup},
};

const PASSPHRASE: &str = "a long recovery passphrase";
/// A string only A's files contain; B must never hold it in the clear.
const SECRET: &str = "the-plaintext-B-must-never-see-7f3a9c";

fn backup(dev: &Device, args: &[&str]) -> String {
    let (code, out, err) = run_backup(&dev.config_path(), &dev.data_dir(), args);
    assert_eq!(code, 0, "hearth backup {args:?}: {err}");
    out
}

/// Sets up A's backups of its files folder and takes a snapshot.
pub(crate) fn init_backups(dev: &Device) {
    let pp = dev.dir.path().join("pp");
    std::fs::write(&pp, format!("{PASSPHRASE}\n")).unwrap();
    backup(dev, &["init", "--passphrase-file", pp.to_str().unwrap()]);
    backup(dev, &["add", dev.files_dir().to_str().unwrap()]);
    backup(dev, &["run"]);
}

pub(crate) fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    // Incompressible and deterministic: BLAKE3 in XOF mode.
    let mut out = vec![0u8; n];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

pub(crate) fn device_id(dev: &Device) -> DeviceId {
    DeviceId::of_cert(&std::fs::read(dev.data_dir().join("identity/cert.der")).unwrap())
}

/// Pack name → bytes under `dir` (`<xx>/<name>`).
fn packs_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(subs) = std::fs::read_dir(dir) else {
        return out;
    };
    for s in subs.flatten() {
        for f in std::fs::read_dir(s.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.len() == 64 {
                out.insert(name, std::fs::read(f.path()).unwrap_or_default());
            }
        }
    }
    out
}

pub(crate) fn own_packs(dev: &Device) -> BTreeMap<String, Vec<u8>> {
    packs_in(&dev.data_dir().join("repo/packs"))
}

pub(crate) fn held_packs(holder: &Device, owner: DeviceId) -> BTreeMap<String, Vec<u8>> {
    packs_in(
        &holder
            .data_dir()
            .join("mirror")
            .join(owner.to_hex())
            .join("packs"),
    )
}

/// Waits until the holder has every pack of the owner, intact.
pub(crate) async fn wait_mirrored(
    owner: &Device,
    holder: &Device,
    owner_id: DeviceId,
    within: Duration,
) {
    eventually_async(within, "every pack mirrored", async || {
        let (mine, theirs) = (own_packs(owner), held_packs(holder, owner_id));
        if !mine.is_empty() && mine == theirs {
            return Ok(());
        }
        Err(format!(
            "{} of {} packs\nowner log:\n{}\nholder log:\n{}",
            theirs.len(),
            mine.len(),
            tail(&owner.log()),
            tail(&holder.log())
        ))
    })
    .await
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("rustls")).collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

pub(crate) fn between<'a>(body: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = body.find(start)? + start.len();
    let len = body[from..].find(end)?;
    Some(&body[from..from + len])
}

/// A shows a code, B enters it. Returns the code.
pub(crate) async fn pair(
    shower: &mut Client,
    joiner: &mut Client,
    address: &str,
    replaces: bool,
) -> String {
    let page = shower
        .submit("/admin/peers", "/admin/peers/code", &[])
        .await;
    assert_eq!(page.status, 303);
    let page = shower.get("/admin/peers").await;
    let code = between(&page.body, "id=\"pairing-code\">", "<")
        .expect("a code")
        .to_string();
    assert!(page.body.contains("<svg"), "a QR code is rendered");
    let mut form = vec![("address", address), ("code", code.as_str())];
    if replaces {
        form.push(("replaces", "1"));
    }
    let joined = joiner
        .submit("/admin/peers", "/admin/peers/join", &form)
        .await;
    assert_eq!(joined.status, 303, "{}", joined.body);
    code
}

pub(crate) async fn confirm(
    c: &mut Client,
    other: DeviceId,
    quota_gb: &str,
    replaces: Option<DeviceId>,
) {
    let page = c.get("/admin/peers").await;
    assert!(
        page.body.contains(&other.short()),
        "the peer's fingerprint is shown"
    );
    let replaces = replaces.map(|r| r.to_hex()).unwrap_or_default();
    let r = c
        .submit(
            "/admin/peers",
            &format!("/admin/peers/{}/confirm", other.to_hex()),
            &[("quota_gb", quota_gb), ("replaces", &replaces)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

pub(crate) async fn mirror_now(c: &mut Client, peer: DeviceId) {
    let r = c
        .submit(
            "/admin/peers",
            &format!("/admin/peers/{}/sync", peer.to_hex()),
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
}

/// Every file under `dir` (recursively), whole.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Joins A and B with a veth pair, starts both, and claims their admin
/// pages.
pub(crate) async fn start_both(a: &mut Device, b: &mut Device) -> (Link, Client, Client) {
    let link = Link::new(&a.ns, &b.ns);
    a.start(&link.a_ip);
    b.start(&link.b_ip);
    let (mut ca, mut cb) = (a.client(), b.client());
    ca.claim("alpha admin password").await;
    cb.claim("beta admin password").await;
    (link, ca, cb)
}

/// Pairs A (showing the code) with B, and each admin confirms with the
/// space (GB) it keeps for the other. Returns (A's ID, B's ID).
pub(crate) async fn pair_and_confirm(
    (a, b): (&Device, &Device),
    (ca, cb): (&mut Client, &mut Client),
    (a_keeps, b_keeps): (&str, &str),
) -> (DeviceId, DeviceId) {
    pair(ca, cb, &a.peer_addr, false).await;
    let (ida, idb) = (device_id(a), device_id(b));
    confirm(ca, idb, a_keeps, None).await;
    confirm(cb, ida, b_keeps, None).await;
    (ida, idb)
}

/// Writes `count` incompressible files of `mib` MiB each into A's folder.
pub(crate) fn fill_files(dev: &Device, count: u64, mib: usize, seed: u64) {
    std::fs::create_dir_all(dev.files_dir()).unwrap();
    for i in 0..count {
        std::fs::write(
            dev.files_dir().join(format!("f{i}")),
            random_bytes(mib << 20, seed + i),
        )
        .unwrap();
    }
}

/// Polls `path` until it shows `needle`.
pub(crate) async fn wait_for_page(c: &mut Client, path: &str, needle: &str, within: Duration) {
    eventually_async(within, &format!("\"{needle}\" on {path}"), async || {
        let page = c.get(path).await.body;
        if page.contains(needle) {
            Ok(())
        } else {
            Err(page)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn paired_devices_mirror_prove_storage_and_recover_a_lost_device() {
    // A's files: a diary with a known string, and incompressible data.
    let mut a = Device::new("Alpha", "");
    std::fs::create_dir_all(a.files_dir()).unwrap();
    std::fs::write(a.files_dir().join("diary.txt"), SECRET.repeat(1000)).unwrap();
    std::fs::write(a.files_dir().join("photo.raw"), random_bytes(3 << 20, 1)).unwrap();
    init_backups(&a);
    std::fs::write(a.files_dir().join("later.txt"), format!("{SECRET} second")).unwrap();
    backup(&a, &["run"]);
    let snapshots_before = backup(&a, &["list"]);
    let originals: BTreeMap<String, Vec<u8>> = ["diary.txt", "photo.raw", "later.txt"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(a.files_dir().join(n)).unwrap()))
        .collect();

    let mut b = Device::new("Beta", "");
    let (link, mut ca, mut cb) = start_both(&mut a, &mut b).await;
    let (ida, idb) = pair_and_confirm((&a, &b), (&mut ca, &mut cb), ("1", "1")).await;

    // Mirror A to B.
    mirror_now(&mut ca, idb).await;
    wait_mirrored(&a, &b, ida, Duration::from_secs(60)).await;
    // B holds the last pack a moment before A hears B's answer and records
    // it, so A's page catches up rather than being right at once.
    wait_for_page(
        &mut ca,
        "/admin/peers",
        "up to date",
        Duration::from_secs(30),
    )
    .await;

    // B holds only ciphertext: the known string is nowhere in its files,
    // database included.
    for f in all_files(b.dir.path()) {
        let data = std::fs::read(&f).unwrap_or_default();
        assert!(
            !data.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds A's plaintext",
            f.display()
        );
    }

    // A flipped byte in B's copy is found by the next proof of storage,
    // and the pack is sent again.
    let (name, _) = held_packs(&b, ida).into_iter().next().unwrap();
    let path = b
        .data_dir()
        .join("mirror")
        .join(ida.to_hex())
        .join("packs")
        .join(&name[..2])
        .join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let r = ca
        .submit(
            "/admin/peers",
            &format!("/admin/peers/{}/check", idb.to_hex()),
            &[],
        )
        .await;
    let notice = r.location().unwrap_or_default().to_string();
    assert!(notice.contains("missing%20or%20damaged"), "{notice}");
    let page = ca.get("/admin/peers").await.body;
    assert!(page.contains("1 failed"), "shown on the page: {page}");
    let dash = ca.get("/admin").await.body;
    assert!(
        dash.contains("missing or damaged copies at Beta"),
        "and the dashboard: {dash}"
    );
    wait_mirrored(&a, &b, ida, Duration::from_secs(60)).await;

    // Disaster: A's card is gone. A fresh A' pairs with B as A's
    // replacement and gets every snapshot back with the passphrase.
    a.kill();
    std::fs::remove_dir_all(a.data_dir()).unwrap();
    std::fs::remove_dir_all(a.files_dir()).unwrap();
    a.start(&link.a_ip);
    let new_a = device_id(&a);
    assert_ne!(new_a, ida, "a fresh device has a fresh identity");
    let mut ca = a.client();
    ca.claim("a new admin password").await;
    pair(&mut cb, &mut ca, &b.peer_addr, true).await;
    let page = cb.get("/admin/peers").await.body;
    assert!(page.contains("replaces a lost device"), "{page}");
    confirm(&mut cb, new_a, "1", Some(ida)).await;
    confirm(&mut ca, idb, "1", None).await;
    let r = ca
        .submit(
            "/admin/peers",
            &format!("/admin/peers/{}/restore", idb.to_hex()),
            &[("passphrase", PASSPHRASE)],
        )
        .await;
    assert_eq!(r.status, 303);
    let body = eventually_async(Duration::from_secs(60), "the restore from B", async || {
        let body = ca.get("/admin/peers/progress").await.body;
        if body.contains("done:") {
            return Ok(body);
        }
        assert!(!body.contains("failed"), "{body}");
        Err(format!("{body}\n{}", tail(&a.log())))
    })
    .await;
    assert!(body.contains("2 snapshots back"), "{body}");
    assert_eq!(
        backup(&a, &["list"]).lines().count(),
        snapshots_before.lines().count()
    );
    // Every snapshot restores byte-identical.
    let target = a.dir.path().join("restored");
    let list = backup(&a, &["--json", "list"]);
    let ids: Vec<i64> = serde_json::from_str::<Vec<serde_json::Value>>(&list)
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    for id in ids {
        let dir = target.join(id.to_string());
        backup(
            &a,
            &[
                "restore",
                &id.to_string(),
                "--target",
                dir.to_str().unwrap(),
            ],
        );
        for (name, data) in &originals {
            let got = std::fs::read(dir.join(name));
            if name == "later.txt" && got.is_err() {
                continue; // not in the first snapshot
            }
            assert_eq!(&got.unwrap(), data, "snapshot {id}: {name}");
        }
    }
    // The old device is gone from B's list; its backups belong to A' now.
    let page = cb.get("/admin/peers").await.body;
    assert!(!page.contains(&ida.short()), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_burn_the_code_and_an_impostor_cannot_pose_as_the_peer() {
    let mut a = Device::new("Alpha", "");
    let mut b = Device::new("Beta", "");
    let (link, mut ca, mut cb) = start_both(&mut a, &mut b).await;

    // Five wrong codes: each refused, then the code is burned.
    ca.submit("/admin/peers", "/admin/peers/code", &[]).await;
    let page = ca.get("/admin/peers").await.body;
    let code = between(&page, "id=\"pairing-code\">", "<")
        .unwrap()
        .to_string();
    let wrong = if code == "ACDEFGHJ" {
        "ACDEFGHK"
    } else {
        "ACDEFGHJ"
    };
    for _ in 0..5 {
        let r = cb
            .submit(
                "/admin/peers",
                "/admin/peers/join",
                &[("address", &a.peer_addr), ("code", wrong)],
            )
            .await;
        assert_eq!(r.status, 400);
        assert!(r.body.contains("The code was wrong"), "{}", r.body);
    }
    let r = cb
        .submit(
            "/admin/peers",
            "/admin/peers/join",
            &[("address", &a.peer_addr), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("not showing a pairing code"), "{}", r.body);
    assert!(
        !ca.get("/admin/peers")
            .await
            .body
            .contains("id=\"pairing-code\"")
    );
    // Nothing was stored on either side.
    assert!(!ca.get("/admin/peers").await.body.contains("Beta"));
    assert!(!cb.get("/admin/peers").await.body.contains("Alpha"));

    // A real pairing, then B is replaced on its address by a device with
    // another certificate: A refuses to talk to it.
    let (ida, idb) = pair_and_confirm((&a, &b), (&mut ca, &mut cb), ("1", "1")).await;
    fill_files(&a, 1, 1, 2);
    init_backups(&a);
    mirror_now(&mut ca, idb).await;
    wait_mirrored(&a, &b, ida, Duration::from_secs(60)).await;
    b.kill();
    let mut impostor = Device::new("Beta", "");
    // Same namespace, same address: only the certificate differs.
    std::mem::swap(&mut impostor.ns, &mut b.ns);
    impostor.start(&link.b_ip);
    mirror_now(&mut ca, idb).await;
    wait_for_page(
        &mut ca,
        "/admin/peers",
        "not the paired device",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        held_packs(&impostor, ida).is_empty(),
        "the impostor got nothing"
    );
    std::mem::swap(&mut impostor.ns, &mut b.ns);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quota_is_respected() {
    let mut a = Device::new("Alpha", "");
    // Two packs' worth: about 20 MiB of incompressible data.
    fill_files(&a, 4, 5, 10);
    init_backups(&a);
    let mut b = Device::new("Beta", "");
    let (_link, mut ca, mut cb) = start_both(&mut a, &mut b).await;
    // B keeps at most 18 MB for A: the first pack fits, the rest does not.
    let (ida, idb) = pair_and_confirm((&a, &b), (&mut ca, &mut cb), ("1", "0.018")).await;
    mirror_now(&mut ca, idb).await;
    wait_for_page(
        &mut ca,
        "/admin/peers",
        "quota full",
        Duration::from_secs(60),
    )
    .await;
    let held: u64 = held_packs(&b, ida).values().map(|p| p.len() as u64).sum();
    assert!(held <= 18_000_000, "{held} bytes held");
    assert!(own_packs(&a).len() > held_packs(&b, ida).len());
    let page = cb.get("/admin/peers").await.body;
    assert!(
        page.contains("of 18.0 MB") || page.contains("of 17.2 MiB"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirroring_converges_after_twenty_kills_and_a_cut_link() {
    // 1 MiB/s, so every transfer is long enough to be interrupted.
    let mut a = Device::new("Alpha", "mirror_bandwidth_kib = 1024\n");
    fill_files(&a, 3, 7, 20);
    init_backups(&a);
    let mut b = Device::new("Beta", "");
    let (link, mut ca, mut cb) = start_both(&mut a, &mut b).await;
    let (ida, idb) = pair_and_confirm((&a, &b), (&mut ca, &mut cb), ("1", "1")).await;

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut interrupted = 0;
    for _ in 0..20 {
        mirror_now(&mut ca, idb).await;
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // A kill at a random moment is the test: nothing to wait for.
        tokio::time::sleep(Duration::from_millis(200 + (seed >> 33) % 900)).await;
        if own_packs(&a) != held_packs(&b, ida) {
            interrupted += 1;
        }
        b.kill();
        b.start(&link.b_ip);
    }
    assert!(interrupted >= 10, "only {interrupted} kills hit a transfer");
    mirror_now(&mut ca, idb).await;
    wait_mirrored(&a, &b, ida, Duration::from_secs(90)).await;
    // Every held pack hashes to its name.
    for (name, data) in held_packs(&b, ida) {
        assert_eq!(blake3::hash(&data).to_hex().as_str(), name);
    }

    // New data, and the link goes down in the middle of sending it.
    std::fs::write(a.files_dir().join("new"), random_bytes(6 << 20, 99)).unwrap();
    backup(&a, &["run"]);
    mirror_now(&mut ca, idb).await;
    // Timing is the test here, so these sleeps stay: 1.5 s into a transfer
    // of 6 MiB at 1 MiB/s the link goes down, and stays down for 3 s; the
    // assertion below checks the cut came before the end.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    link.set_up(&a.ns, false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(own_packs(&a), held_packs(&b, ida), "cut before the end");
    link.set_up(&a.ns, true);
    mirror_now(&mut ca, idb).await;
    wait_mirrored(&a, &b, ida, Duration::from_secs(120)).await;
}
