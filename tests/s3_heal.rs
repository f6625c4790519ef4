//! Healing from the bucket (`repair-index --from s3` with the device key),
//! against a real three-node Garage cluster: packs lost or damaged on this
//! device come back from the bucket's copies, packs prune condemned stay
//! gone, and a pack whole in neither place is named.

use std::fs;

use crate::{
    garage::Garage,
    lab::{Lab, assert_same_tree},
    s3::{backed_up_twice, local_pack, set_target},
};

#[test]
fn packs_lost_or_damaged_here_come_back_from_the_bucket() {
    let g = Garage::start();
    let lab = Lab::new();
    set_target(&lab, &g);
    let src = backed_up_twice(&lab);
    // Prune here without an upload: the bucket still holds the packs of the
    // forgotten snapshot, condemned but not yet swept.
    lab.ok(&["forget", "1", "--prune"]);
    let condemned = lab.sql("SELECT count(*) FROM backup_remote WHERE condemned = 1");
    assert_ne!(
        condemned, "0",
        "the bucket keeps condemned packs until the sweep"
    );

    let packs: Vec<String> = lab
        .sql("SELECT name FROM backup_packs ORDER BY size DESC")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(packs.len() >= 2, "{packs:?}");
    let (damaged, lost) = (&packs[0], &packs[1]);
    let path = local_pack(&lab, damaged);
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    fs::write(&path, bytes).unwrap();
    fs::remove_file(local_pack(&lab, lost)).unwrap();
    let (code, out, err) = lab.hearth(&["verify", "--read-data"]);
    assert_ne!(code, 0, "the damage is seen before the heal: {out}");
    assert!(
        err.contains("2 damaged or missing packs; the S3 target may hold good copies: 'hearth backup repair-index --from s3'"),
        "{err}"
    );

    // While a backup or prune holds the repository, nothing is fetched.
    let lock = fs::File::open(lab.data().join("repo/lock")).unwrap();
    lock.lock().unwrap();
    let (code, out, err) = lab.hearth(&["repair-index", "--from", "s3"]);
    assert!(
        code != 0 && err.contains("another backup is running on this repository"),
        "{out}{err}"
    );
    assert!(!local_pack(&lab, lost).exists(), "nothing was fetched");
    drop(lock);

    let (code, out, err) = lab.hearth(&["repair-index", "--from", "s3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Fetched from the S3 target: 1 packs missing here, 1 damaged here"),
        "{out}"
    );
    assert!(
        out.contains(&format!("replaced damaged pack {damaged}")),
        "{out}"
    );
    for name in [damaged, lost] {
        let back = fs::read(local_pack(&lab, name)).unwrap();
        assert_eq!(blake3::hash(&back).to_hex().as_str(), name.as_str());
    }
    lab.ok(&["verify", "--read-data"]);
    // The forgotten snapshot's packs were in the bucket, and stayed there.
    assert_eq!(lab.sql("SELECT count(*) FROM backup_snapshots"), "1");
    let id = lab.sql("SELECT id FROM backup_snapshots");
    let restored = lab.path("restored");
    lab.ok(&["restore", &id, "--target", restored.to_str().unwrap()]);
    assert_same_tree(&src, &restored);
    // Nothing fetched is sent back.
    let show = lab.ok(&["target", "show"]);
    assert!(show.contains("waiting:     0 packs"), "{show}");

    // Lost in both places: named, and the command fails.
    let name = packs[0].clone();
    fs::remove_file(local_pack(&lab, &name)).unwrap();
    let client = g.client();
    let (key, _) = client
        .list("hearth/")
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.ends_with(&format!("/packs/{}/{name}", &name[..2])))
        .expect("the pack is in the bucket");
    client.delete(&key).unwrap();
    let (code, out, err) = lab.hearth(&["repair-index", "--from", "s3"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "left out pack {name}: missing here, and the bucket has no copy"
        )),
        "{out}"
    );
    assert!(err.contains("1 packs could not be used"), "{err}");
}
