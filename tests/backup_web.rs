//! The backup pages through the real server: set-up, uploads, automatic
//! backups after a change, browsing, downloads (file, .tar, .zip), restores
//! with progress, settings, and refusals.

use std::{
    fs,
    process::Command,
    time::{Duration, Instant},
};

use crate::lab::noise;
use crate::util::{Client, TestServer, eventually_async};

const PASSPHRASE: &str = "a long recovery passphrase";

/// The newest snapshot id shown on the Backups page, if any.
async fn newest_snapshot(c: &mut Client) -> Option<i64> {
    let page = c.get("/admin/backups").await.body;
    // The first snapshot link in the Snapshots card (the page has others).
    let body = &page[page.find("id=\"snapshots\"")?..];
    let start = body.find("href=\"/admin/backups/")? + "href=\"/admin/backups/".len();
    body[start..].split('"').next()?.parse().ok()
}

/// Polls until a snapshot newer than `after` lists `name` at its top.
async fn wait_for_snapshot_with(c: &mut Client, after: Option<i64>, name: &str) -> (i64, Duration) {
    let started = Instant::now();
    let what = format!("a snapshot with {name}");
    let id = eventually_async(
        Duration::from_secs(90),
        &what,
        async || match newest_snapshot(c).await {
            Some(id) if Some(id) > after => {
                let page = c.get(&format!("/admin/backups/{id}")).await;
                if page.body.contains(name) {
                    Ok(id)
                } else {
                    Err(format!("snapshot {id} without it"))
                }
            }
            newest => Err(format!("newest snapshot {newest:?}")),
        },
    )
    .await;
    (id, started.elapsed())
}

async fn upload(c: &mut Client, name: &str, data: Vec<u8>, token: &str) -> u16 {
    let part = reqwest::multipart::Part::bytes(data).file_name(name.to_string());
    let form = reqwest::multipart::Form::new().part("file", part);
    c.post_multipart("/admin/files/upload", form, &[("x-hearth-csrf", token)])
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn backups_are_set_up_used_and_restored_from_the_admin_panel() {
    let server = TestServer::start();
    let mut c = server.client();
    assert_eq!(c.claim("backup web password").await.status, 303);
    let page = c.get("/admin/backups").await;
    assert!(page.body.contains("recovery passphrase"), "{}", page.body);

    // Set-up refusals store nothing.
    let p = c
        .submit(
            "/admin/backups",
            "/admin/backups/init",
            &[
                ("passphrase", PASSPHRASE),
                ("confirm", "something else entirely"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("differ"), "{}", p.body);
    let p = c
        .submit(
            "/admin/backups",
            "/admin/backups/init",
            &[("passphrase", "short"), ("confirm", "short")],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(!server.data_dir().join("repo").exists());
    let p = c
        .submit(
            "/admin/backups",
            "/admin/backups/init",
            &[("passphrase", PASSPHRASE), ("confirm", PASSPHRASE)],
        )
        .await;
    assert_eq!(p.location(), Some("/admin/backups?done=init"), "{}", p.body);
    let page = c.get("/admin/backups").await.body;
    let files = fs::canonicalize(server.files_dir()).unwrap();
    assert!(page.contains(&files.display().to_string()), "{page}");

    // Uploads: per-file requests with the token in a header, and refusals.
    let token = c.get("/admin/files").await.csrf();
    let photo = noise(3 << 20, 42);
    assert_eq!(
        upload(&mut c, "holiday.jpg", photo.clone(), &token).await,
        204
    );
    assert_eq!(
        upload(&mut c, "holiday.jpg", b"second".to_vec(), &token).await,
        204
    );
    assert_eq!(fs::read(files.join("holiday.jpg")).unwrap(), photo);
    assert_eq!(fs::read(files.join("holiday (2).jpg")).unwrap(), b"second");
    assert_eq!(
        upload(&mut c, "forged.txt", b"x".to_vec(), "wrong").await,
        403
    );
    assert_eq!(upload(&mut c, ".hidden", b"x".to_vec(), &token).await, 400);
    let p = c
        .post_raw(
            "/admin/files/upload",
            "multipart/form-data; boundary=XX",
            b"--XX\r\ngarbage".to_vec(),
        )
        .await;
    assert!(p.status == 400 || p.status == 403, "{}", p.status);
    // A plain form: the token must come before the file.
    let form = reqwest::multipart::Form::new()
        .text("csrf", token.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"plain".to_vec()).file_name("plain.txt"),
        );
    let p = c.post_multipart("/admin/files/upload", form, &[]).await;
    assert_eq!(p.location(), Some("/admin/files?uploaded=1"));
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"sneaky".to_vec()).file_name("sneaky.txt"),
        )
        .text("csrf", token.clone());
    assert_eq!(
        c.post_multipart("/admin/files/upload", form, &[])
            .await
            .status,
        403
    );
    let names: Vec<String> = fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("forged")
            || n.contains("sneaky")
            || n.starts_with(".hearth-upload")),
        "{names:?}"
    );

    // The watcher backs up the change on its own, well within a minute, with
    // the default quiet time.
    let (first, _) = wait_for_snapshot_with(&mut c, None, "plain.txt").await;
    fs::write(
        files.join("later.txt"),
        "written after the first snapshot\n",
    )
    .unwrap();
    let (id, took) = wait_for_snapshot_with(&mut c, Some(first), "later.txt").await;
    println!("a change was backed up {took:?} after it was made");
    assert!(took < Duration::from_secs(60), "took {took:?}");

    // Download one file, byte for byte, and the folder as .tar and .zip.
    let (status, headers, body) = c
        .get_bytes(&format!("/admin/backups/{id}/file?path=holiday.jpg"))
        .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("holiday.jpg")
    );
    assert_eq!(body, photo);
    let (status, _, _) = c
        .get_bytes(&format!("/admin/backups/{id}/file?path=nope.jpg"))
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = c
        .get_bytes(&format!("/admin/backups/{id}/file?path=../etc/passwd"))
        .await;
    assert_eq!(status, 400);
    for format in ["tar", "zip"] {
        let (status, _, body) = c
            .get_bytes(&format!("/admin/backups/{id}/archive?format={format}"))
            .await;
        assert_eq!(status, 200, "{format}");
        let out = server.dir.path().join(format!("from-{format}"));
        fs::create_dir(&out).unwrap();
        let file = server.dir.path().join(format!("download.{format}"));
        fs::write(&file, &body).unwrap();
        let status = match format {
            "tar" => Command::new("tar")
                .arg("-xf")
                .arg(&file)
                .arg("-C")
                .arg(&out)
                .status(),
            _ => Command::new("unzip")
                .arg("-q")
                .arg(&file)
                .arg("-d")
                .arg(&out)
                .status(),
        }
        .unwrap();
        assert!(status.success(), "{format} extracts");
        let top = out.join("files");
        assert_eq!(
            fs::read(top.join("holiday.jpg")).unwrap(),
            photo,
            "{format}"
        );
        assert_eq!(
            fs::read(top.join("later.txt")).unwrap(),
            b"written after the first snapshot\n"
        );
    }

    // Restore in place after a loss, and the whole snapshot elsewhere.
    fs::remove_file(files.join("holiday.jpg")).unwrap();
    let p = c
        .submit(
            &format!("/admin/backups/{id}"),
            &format!("/admin/backups/{id}/restore"),
            &[("path", "holiday.jpg"), ("mode", "in_place")],
        )
        .await;
    let job = p.location().expect("redirect to the job").to_string();
    wait_for_restore(&mut c, &job).await;
    assert_eq!(fs::read(files.join("holiday.jpg")).unwrap(), photo);
    let elsewhere = server.dir.path().join("elsewhere");
    let p = c
        .submit(
            &format!("/admin/backups/{id}"),
            &format!("/admin/backups/{id}/restore"),
            &[
                ("path", ""),
                ("mode", "elsewhere"),
                ("target", elsewhere.to_str().unwrap()),
            ],
        )
        .await;
    let job = p.location().expect("redirect to the job").to_string();
    let done = wait_for_restore(&mut c, &job).await;
    assert!(done.contains("Done: 4 files"), "{done}");
    assert_eq!(fs::read(elsewhere.join("holiday.jpg")).unwrap(), photo);
    let p = c
        .submit(
            &format!("/admin/backups/{id}"),
            &format!("/admin/backups/{id}/restore"),
            &[
                ("path", ""),
                ("mode", "elsewhere"),
                ("target", "relative/dir"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);

    // Settings round-trip; nonsense is refused.
    let p = c
        .submit(
            "/admin/backups",
            "/admin/backups/settings",
            &[
                ("daily", "3"),
                ("weekly", "2"),
                ("monthly", "1"),
                ("every_minutes", "30"),
                ("watch", "on"),
            ],
        )
        .await;
    assert_eq!(p.location(), Some("/admin/backups?done=saved"));
    let page = c.get("/admin/backups").await.body;
    assert!(
        page.contains("name=\"daily\" min=\"0\" max=\"1000\" value=\"3\""),
        "{page}"
    );
    let p = c
        .submit(
            "/admin/backups",
            "/admin/backups/settings",
            &[
                ("daily", "-1"),
                ("weekly", "2"),
                ("monthly", "1"),
                ("every_minutes", "30"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);

    // Folders: refusals with a reason.
    for (path, why) in [
        ("relative/path", "full path"),
        ("/no/such/folder", "cannot be backed up"),
        (server.data_dir().to_str().unwrap(), "data folder"),
    ] {
        let p = c
            .submit(
                "/admin/backups",
                "/admin/backups/sources",
                &[("path", path)],
            )
            .await;
        assert_eq!(p.status, 400, "{path}");
        assert!(p.body.contains(why), "{path}: {}", p.body);
    }
    // State changes without the token are refused.
    assert_eq!(c.post("/admin/backups/run", &[]).await.status, 403);
}

/// Follows a restore job to its end; returns the finished page.
async fn wait_for_restore(c: &mut Client, job: &str) -> String {
    eventually_async(
        Duration::from_secs(60),
        "the restore to finish",
        async || {
            let status = c.get(&format!("{job}/status")).await.body;
            if status.contains("\"running\":false") {
                Ok(())
            } else {
                Err(status)
            }
        },
    )
    .await;
    let page = c.get(job).await.body;
    assert!(page.contains("restore-progress"), "{page}");
    page
}
