//! Admin → Files: the folder uploads land in, and the upload itself.
//!
//! Each upload streams to a temporary file beside its final name
//! (`.hearth-upload-…`, which backups and the watcher ignore), is fsynced,
//! and only then renamed into place, with the folder fsynced after. A
//! dropped connection or a full disk leaves no half file under a real name.
//! An existing name is never overwritten: the new file gets " (2)" and so on.

use std::{
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use tokio::io::AsyncWriteExt;

use axum::{
    extract::{Multipart, Query, State, multipart::Field},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use crate::{
    AppState, WebError,
    csrf::{issue, verify_token},
    error::render,
    format::{bytes, when},
    pages::{FileRow, FilesPage},
    session::Admin,
};

/// Space always left free on the data disk, so an upload cannot starve the
/// database and the backups.
const RESERVE: u64 = 256 * 1024 * 1024;

#[derive(Deserialize)]
pub(crate) struct Notice {
    uploaded: Option<usize>,
}

pub(crate) async fn page(
    _admin: Admin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let dir = state.files_dir.as_ref().clone();
    let (files, free) = tokio::task::spawn_blocking(move || {
        let _ = std::fs::create_dir_all(&dir);
        let mut files: Vec<(String, u64, i64)> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| !hearth_backup::is_temporary(&e.file_name()))
                    .filter_map(|e| {
                        let md = e.metadata().ok()?;
                        let mtime = md
                            .modified()
                            .ok()?
                            .duration_since(UNIX_EPOCH)
                            .ok()?
                            .as_secs() as i64;
                        Some((
                            e.file_name().to_string_lossy().into_owned(),
                            md.len(),
                            mtime,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        (files, hearth_system::files::free_bytes(&dir))
    })
    .await
    .map_err(|e| WebError::Internal(format!("listing files: {e}")))?;
    let (jar, csrf) = issue(&state, jar)?;
    let page = FilesPage {
        csrf,
        dir: state.files_dir.display().to_string(),
        files: files
            .into_iter()
            .map(|(name, size, mtime)| FileRow {
                name,
                size: bytes(size),
                when: when(mtime),
            })
            .collect(),
        notice: q.uploaded.map(|n| match n {
            1 => "1 file uploaded.".to_string(),
            n => format!("{n} files uploaded."),
        }),
        free: bytes(free),
    };
    Ok((jar, render(&page)?).into_response())
}

/// A file name as a browser sent it, checked: no folders, no hidden or
/// special names, no control characters.
fn safe_name(raw: &str) -> Result<String, WebError> {
    // Some browsers send a full Windows path.
    let name = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let bad = || {
        WebError::BadRequest(format!(
            "\"{}\" cannot be used as a file name here.",
            raw.chars().filter(|c| !c.is_control()).collect::<String>()
        ))
    };
    if name.is_empty()
        || name.starts_with('.')
        || name.len() > 255
        || name.chars().any(char::is_control)
    {
        return Err(bad());
    }
    Ok(name.to_string())
}

/// The first free name: `name`, then `name (2).ext`, `name (3).ext`...
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if std::fs::symlink_metadata(&first).is_err() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .unwrap_or(first)
}

/// Receives files. Scripted uploads send one file per request with the
/// token in a header, for a progress bar each; a plain form sends all
/// files at once with the token as its first field.
pub(crate) async fn upload(
    _admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, WebError> {
    let scripted = crate::csrf::header_token(&state, &headers)?;
    let mut checked = scripted;
    let too_big = crate::csrf::content_length(&headers).is_some_and(|len| {
        len.saturating_add(RESERVE) > hearth_system::files::free_bytes(&state.files_dir)
    });
    if too_big {
        return Err(WebError::BadRequest(
            "There is not enough free space on this Hearth for that upload.".into(),
        ));
    }
    let mut saved = 0;
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("csrf") if !checked => {
                let token = field.text().await.map_err(malformed)?;
                verify_token(&state, &headers, &token)?;
                checked = true;
            }
            Some("file") if checked => {
                if field.file_name().is_none_or(str::is_empty) {
                    continue; // an empty file input
                }
                save(&state, field).await?;
                saved += 1;
            }
            // A file before the token: refuse before storing anything.
            Some("file") => return Err(crate::csrf::forged()),
            _ => {}
        }
    }
    if saved == 0 {
        return Err(WebError::BadRequest(
            "Choose at least one file to upload.".into(),
        ));
    }
    if scripted {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(Redirect::to(&format!("/admin/files?uploaded={saved}")).into_response())
    }
}

fn malformed(e: axum::extract::multipart::MultipartError) -> WebError {
    log::warn!("upload refused: {e}");
    WebError::BadRequest("The upload was malformed or interrupted. Try again.".into())
}

/// Streams one file field to disk, durably, under a free name.
async fn save(state: &AppState, mut field: Field<'_>) -> Result<(), WebError> {
    let name = safe_name(field.file_name().unwrap_or_default())?;
    let dir = state.files_dir.as_ref().clone();
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).map_err(|e| WebError::Internal(e.to_string()))?;
    let tmp = dir.join(format!(".hearth-upload-{}", hex::encode(rnd)));
    let io = |e: std::io::Error| WebError::Internal(format!("saving an upload: {e}"));
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let mut file = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(&tmp).await.map_err(io)?,
    );
    let result: Result<(), WebError> = async {
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        drop(file);
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let f = file.into_inner().into_std().await;
    let finish = move || -> Result<PathBuf, std::io::Error> {
        f.sync_all()?;
        drop(f);
        let dest = free_name(&dir, &name);
        std::fs::rename(&tmp, &dest)?;
        hearth_system::sync_parent(&dest)?;
        Ok(dest)
    };
    let dest = tokio::task::spawn_blocking(finish)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(io)?;
    log::info!("uploaded {}", dest.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_checked_and_never_overwrite() {
        assert_eq!(safe_name("C:\\Users\\me\\photo.jpg").unwrap(), "photo.jpg");
        assert_eq!(safe_name("a/b/notes.txt").unwrap(), "notes.txt");
        for bad in ["", ".hidden", "..", "a\nb", "dir/", &"x".repeat(300)] {
            assert!(safe_name(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(free_name(dir.path(), "a.txt"), dir.path().join("a.txt"));
        std::fs::write(dir.path().join("a.txt"), "").unwrap();
        std::fs::write(dir.path().join("a (2).txt"), "").unwrap();
        assert_eq!(free_name(dir.path(), "a.txt"), dir.path().join("a (3).txt"));
        std::fs::write(dir.path().join("README"), "").unwrap();
        assert_eq!(
            free_name(dir.path(), "README"),
            dir.path().join("README (2)")
        );
    }
}
