//! Disaster recovery from the bucket alone, against a real three-node
//! Garage cluster: the command line (also used by the other S3 modules to
//! prove the bucket restores what they did) and the admin page.

use std::fs;

use crate::{
    garage::Garage,
    lab::{Lab, PASSPHRASE, assert_same_tree, awkward_tree},
    s3::set_target,
    util::TestServer,
};

/// A device with the target set that has backed up the awkward tree (its
/// `src` folder) into the cluster.
pub(crate) fn awkward_backup(g: &Garage) -> (Lab, std::path::PathBuf) {
    let lab = Lab::new();
    set_target(&lab, g);
    let src = lab.path("src");
    awkward_tree(&src);
    lab.ok(&["run", src.to_str().unwrap()]);
    (lab, src)
}

/// `repair-index --recover-key --from s3` with the right passphrase, in a
/// data folder whose target is set; `env` is added to its environment.
pub(crate) fn recover_from_bucket(fresh: &Lab, env: &[(&str, &str)]) {
    let (code, out, err) = try_recover(fresh, env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Downloaded repository"), "{out}");
}

fn try_recover(fresh: &Lab, env: &[(&str, &str)]) -> (i32, String, String) {
    run_recover(fresh, &[], env)
}

/// `repair-index --recover-key --from s3` with the passphrase in a file,
/// after the global flags `first` (such as `--json`).
fn run_recover(fresh: &Lab, first: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    fs::write(fresh.path("pp"), format!("{PASSPHRASE}\n")).unwrap();
    let pp = fresh.path("pp");
    let mut args = first.to_vec();
    args.extend([
        "repair-index",
        "--recover-key",
        "--from",
        "s3",
        "--passphrase-file",
        pp.to_str().unwrap(),
    ]);
    fresh.hearth_env(&args, env)
}

/// Run again over packs already here, the recovery fetches only what it
/// must: each pack here is checked against its name, not taken on its
/// size, so one damaged on this device since is fetched again over the
/// damaged copy, and the repair after it finds every pack whole.
pub(crate) fn rerun_checks_packs_already_here(g: &Garage, pack: &str) {
    let fresh = Lab::bare();
    set_target(&fresh, g);
    recover_from_bucket(&fresh, &[]);
    let local = fresh.data().join("repo/packs").join(&pack[..2]).join(pack);
    let mut bytes = fs::read(&local).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    fs::write(&local, bytes).unwrap();
    let (code, out, err) = try_recover(&fresh, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": 1 packs ("), "{out}");
    assert!(
        out.contains("1 of those packs replaced a damaged copy here."),
        "{out}"
    );
    assert!(!out.contains("left out pack"), "{out}");
    let back = fs::read(&local).unwrap();
    assert_eq!(blake3::hash(&back).to_hex().as_str(), pack);
    fresh.ok(&["verify", "--read-data"]);

    // With --json, stdout is the repair's report alone; the recovery's own
    // lines go to stderr.
    let (code, out, err) = run_recover(&fresh, &["--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert!(report["packs"].as_u64().unwrap() > 0, "{out}");
    assert!(err.contains("Downloaded repository"), "{err}");
}

/// A fresh data folder that knows only the S3 settings and the passphrase
/// brings every snapshot back, byte-identical with modes and times.
pub(crate) fn recover_elsewhere(g: &Garage, snapshot: &str, expect: &std::path::Path) {
    let fresh = Lab::bare();
    set_target(&fresh, g);
    recover_from_bucket(&fresh, &[]);
    let target = fresh.path("restored");
    fresh.ok(&["restore", snapshot, "--target", target.to_str().unwrap()]);
    assert_same_tree(expect, &target);
    // What came from the bucket is not sent back to it.
    let show = fresh.ok(&["target", "show"]);
    assert!(show.contains("waiting:     0 packs"), "{show}");
}

/// Disaster recovery from the admin page: a new Hearth given only the S3
/// settings offers it; a wrong passphrase recovers nothing and says so, the
/// right one brings the snapshots back. Then a pack damaged here is healed
/// from the bucket by the target page's button.
#[tokio::test]
async fn admin_page_recovers_from_the_bucket() {
    let g = Garage::start();
    let (_lab, src) = awkward_backup(&g);

    let server = TestServer::start();
    let mut c = server.client();
    assert_eq!(c.claim("recovery test password").await.status, 303);
    let page = c.get("/admin/backups").await.body;
    assert!(!page.contains("Recover from the S3 target"), "{page}");
    let p = c
        .submit(
            "/admin/backups/target",
            "/admin/backups/target",
            &[
                ("endpoint", g.endpoint()),
                ("region", "garage"),
                ("bucket", "hearth"),
                ("access_key", g.key_id()),
                ("secret", g.secret()),
            ],
        )
        .await;
    assert_eq!(
        p.location(),
        Some("/admin/backups/target?done=saved"),
        "{}",
        p.body
    );
    let page = c.get("/admin/backups").await.body;
    assert!(page.contains("Recover from the S3 target"), "{page}");

    let p = c
        .submit(
            "/admin/backups",
            "/admin/backups/recover",
            &[("passphrase", "not the passphrase at all")],
        )
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(
        p.body
            .contains("Nothing was recovered: The recovery passphrase is not right."),
        "{}",
        p.body
    );
    for file in ["repo/HEARTH-REPO", "repo/key.age", "backup.key"] {
        assert!(!server.data_dir().join(file).exists(), "{file}");
    }

    let p = c
        .submit(
            "/admin/backups",
            "/admin/backups/recover",
            &[("passphrase", PASSPHRASE)],
        )
        .await;
    assert_eq!(
        p.location(),
        Some("/admin/backups?done=recovered"),
        "{}",
        p.body
    );
    let page = c.get("/admin/backups?done=recovered").await.body;
    assert!(
        page.contains("Backups recovered from the S3 target") && page.contains("/src</code>"),
        "{page}"
    );
    let out = server.dir.path().join("out");
    let (code, _, err) = crate::util::run_backup(
        &server.config_path(),
        &server.data_dir(),
        &["restore", "1", "--target", out.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&src, &out);

    // A pack damaged here later: the target's page fetches the bucket's
    // copy, and says so; asked again, it finds every pack sound.
    let mut packs: Vec<std::path::PathBuf> = fs::read_dir(server.data_dir().join("repo/packs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .collect();
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let damaged = packs.last().unwrap();
    let mut bytes = fs::read(damaged).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    fs::write(damaged, &bytes).unwrap();
    let p = c
        .submit("/admin/backups/target", "/admin/backups/target/heal", &[])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(
        p.body.contains(
            "Fetched from the bucket: 0 packs missing here and 1 damaged here; the index was rebuilt."
        ),
        "{}",
        p.body
    );
    let name = damaged.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        blake3::hash(&fs::read(damaged).unwrap()).to_hex().as_str(),
        name
    );
    let p = c
        .submit("/admin/backups/target", "/admin/backups/target/heal", &[])
        .await;
    assert!(
        p.body.contains(&format!(
            "All {} packs here are sound; nothing was fetched.",
            packs.len()
        )),
        "{}",
        p.body
    );
}
