use super::*;

#[test]
fn migrations_are_valid() {
    Migrations::from_slice(MIGRATIONS).validate().unwrap();
}

#[test]
fn opens_in_wal_mode_with_private_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    let store = Store::open(&path).unwrap();
    let mode: String = store
        .write_now(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(mode, "wal");
    let perms = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(perms & 0o777, 0o600);
}

#[test]
fn too_new_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer Hearth"));
}

#[test]
fn backup_is_complete_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    let store = Store::open(&path).unwrap();
    store
        .write_now(|c| {
            c.execute("INSERT INTO settings (key, value) VALUES ('k', x'01')", [])?;
            Ok(())
        })
        .unwrap();
    let dest = dir.path().join("copy.db");
    backup(&path, &dest).unwrap();
    let copy = Connection::open(&dest).unwrap();
    let n: i64 = copy
        .query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    assert!(matches!(
        backup(&path, &dest),
        Err(StoreError::BackupExists(_))
    ));
}

#[tokio::test]
async fn reads_see_committed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hearth.db")).unwrap();
    store
        .write(|c| {
            c.execute("INSERT INTO settings VALUES ('a', x'02')", [])?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let v: Vec<u8> = store
        .read(|c| Ok::<_, StoreError>(c.query_row("SELECT value FROM settings", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(v, vec![2]);
}
