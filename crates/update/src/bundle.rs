//! Reading a bundle and writing it into a slot.
//!
//! A bundle is a plain tar file (`tar tf` lists it): `manifest.toml`, then
//! `manifest.toml.minisig`, then each file the manifest lists, in its order.
//! The signature is checked before a byte of payload is read, the payload
//! is hashed as it streams into a hidden staging folder, and only a bundle
//! whose every file matched is renamed into place as a slot. A refusal, a
//! crash or a full disk therefore leaves nothing a later start would use.

use std::{
    fs::File,
    io::{Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use sha2::{Digest, Sha256};

use crate::{
    Accept, Keys, Manifest, Signer, UpdateError,
    error::reading,
    manifest::{MAX_MANIFEST, MAX_SIGNATURE, PROGRAM},
};

/// The manifest's and the signature's names inside a bundle and a slot.
pub const MANIFEST: &str = "manifest.toml";
pub const SIGNATURE: &str = "manifest.toml.minisig";

/// Room kept free beside the payload (the database copy, the journal).
const MARGIN: u64 = 16 * 1024 * 1024;

/// Bytes of the bundle read so far, and its size when known: what the
/// admin page's progress bar shows while a bundle is checked.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

/// A manifest whose signature checked out, with the bytes it came from
/// (kept verbatim in the slot so it can be checked again at every start).
#[derive(Clone, Debug)]
pub struct Signed {
    pub manifest: Manifest,
    pub signer: Signer,
    pub bytes: Vec<u8>,
    pub signature: String,
}

impl Signed {
    /// Checks the signature, then the manifest's shape.
    pub fn verify(keys: &Keys, bytes: Vec<u8>, signature: String) -> Result<Signed, UpdateError> {
        let signer = keys.verify(&bytes, &signature)?;
        let manifest = Manifest::parse(&bytes)?;
        Ok(Signed {
            manifest,
            signer,
            bytes,
            signature,
        })
    }

    /// Refuses a bundle this device may not install, or that cannot fit.
    pub fn check(
        &self,
        running: &semver::Version,
        accept: Accept,
        dir: &Path,
    ) -> Result<(), UpdateError> {
        self.manifest.check(running, accept)?;
        let need = self.manifest.payload_bytes() + MARGIN;
        let free = hearth_system::files::free_bytes(dir);
        if free < need {
            return Err(UpdateError::NoSpace {
                need_mb: need.div_ceil(1_000_000),
                free_mb: free / 1_000_000,
            });
        }
        Ok(())
    }
}

/// Reads the manifest and signature from the head of a bundle, checks
/// them, then reads every payload file into `out` (a staging folder it
/// creates once the checks pass) or, with `None`, only hashes it.
pub(crate) fn read(
    keys: &Keys,
    running: &semver::Version,
    accept: Accept,
    space_dir: &Path,
    reader: impl Read,
    progress: &Arc<Progress>,
    out: Option<&Path>,
) -> Result<Signed, UpdateError> {
    let mut counted = Counted {
        inner: reader,
        progress: progress.clone(),
    };
    // A tar file starts with a ustar header ("ustar" at byte 257); anything
    // else (a photo, a zip, a few bytes) is the wrong file, not a damaged
    // update.
    let mut head = Vec::with_capacity(512);
    (&mut counted)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| UpdateError::NotABundle(e.to_string()))?;
    if head.get(257..262) != Some(b"ustar".as_slice()) {
        return Err(UpdateError::NotABundle("no tar archive".into()));
    }
    let counted = std::io::Cursor::new(head).chain(counted);
    let mut archive = tar::Archive::new(counted);
    let mut entries = archive
        .entries()
        .map_err(|e| UpdateError::NotABundle(e.to_string()))?;

    let manifest = read_small(next_entry(&mut entries, MANIFEST)?, MANIFEST, MAX_MANIFEST)?;
    let signature = read_small(
        next_entry(&mut entries, SIGNATURE)?,
        SIGNATURE,
        MAX_SIGNATURE,
    )?;
    let signature = String::from_utf8(signature)
        .map_err(|_| UpdateError::Damaged("its signature is not text".into()))?;
    let signed = Signed::verify(keys, manifest, signature)?;
    signed.check(running, accept, space_dir)?;

    if let Some(dir) = out {
        // Made only now, so a refused bundle leaves no trace at all.
        begin_slot(dir, &signed)?;
    }
    for file in &signed.manifest.files {
        let entry = next_entry(&mut entries, &file.name)?;
        if entry.header().size().unwrap_or(u64::MAX) != file.size {
            return Err(UpdateError::PayloadMismatch(file.name.clone()));
        }
        let dest = out.map(|d| d.join(&file.name));
        copy_checked(entry, file, dest.as_deref())?;
    }
    match entries.next() {
        None => {}
        Some(Ok(extra)) => {
            let name = extra
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(UpdateError::Damaged(format!(
                "it carries {name:?}, which its manifest does not list"
            )));
        }
        // A damaged trailer after complete, verified files changes nothing.
        Some(Err(e)) => log::debug!("update bundle: ignoring its trailer: {e}"),
    }
    Ok(signed)
}

/// The next entry, which must be the plain file `want`.
fn next_entry<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
    want: &str,
) -> Result<tar::Entry<'a, R>, UpdateError> {
    let entry = match entries.next() {
        None => return Err(UpdateError::Truncated(format!("{want} is missing"))),
        Some(Err(e)) if want == MANIFEST => {
            let err = reading(e, "the archive header");
            return Err(match err {
                UpdateError::Damaged(_) => UpdateError::NotABundle("no tar archive".into()),
                other => other,
            });
        }
        Some(Err(e)) => return Err(reading(e, &format!("the header of {want}"))),
        Some(Ok(entry)) => entry,
    };
    let name = entry
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != want {
        return Err(if want == MANIFEST {
            UpdateError::NotABundle(format!("{name:?}"))
        } else {
            UpdateError::Damaged(format!("expected {want}, found {name:?}"))
        });
    }
    if !entry.header().entry_type().is_file() {
        return Err(UpdateError::Damaged(format!("{want} is not a plain file")));
    }
    Ok(entry)
}

/// Streams one payload file, hashing as it goes; refuses a short read or
/// a wrong hash. With a destination, writes and fsyncs it.
fn copy_checked(
    mut from: impl Read,
    file: &crate::manifest::FileEntry,
    dest: Option<&Path>,
) -> Result<(), UpdateError> {
    // The program runs; the files that may come later are data.
    let mode = if file.name == PROGRAM { 0o755 } else { 0o644 };
    let mut out = match dest {
        Some(path) => Some(create(path, mode)?),
        None => None,
    };
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).map_err(|e| reading(e, &file.name))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hash.update(&buf[..n]);
        if let (Some(f), Some(path)) = (out.as_mut(), dest) {
            f.write_all(&buf[..n])
                .map_err(|e| UpdateError::io("write", path, e))?;
        }
    }
    if total > file.size {
        return Err(UpdateError::PayloadMismatch(file.name.clone()));
    }
    if total < file.size {
        return Err(UpdateError::Truncated(format!(
            "{} stops after {total} of {} bytes",
            file.name, file.size
        )));
    }
    if hex::encode(hash.finalize()) != file.sha256.to_ascii_lowercase() {
        return Err(UpdateError::PayloadMismatch(file.name.clone()));
    }
    if let (Some(f), Some(path)) = (out, dest) {
        f.sync_all()
            .map_err(|e| UpdateError::io("flush", path, e))?;
    }
    Ok(())
}

/// Writes one file a peer sent into a staging folder, checking its size
/// and hash as it streams.
pub(crate) fn write_part(
    reader: impl Read,
    file: &crate::manifest::FileEntry,
    dir: &Path,
) -> Result<(), UpdateError> {
    copy_checked(
        reader.take(file.size + 1),
        file,
        Some(&dir.join(&file.name)),
    )
}

/// Creates a staging folder and writes the signed manifest and its
/// signature into it, verbatim, so the slot can be checked again later.
pub(crate) fn begin_slot(dir: &Path, signed: &Signed) -> Result<(), UpdateError> {
    std::fs::create_dir_all(dir).map_err(|e| UpdateError::io("create", dir, e))?;
    write_file(&dir.join(MANIFEST), &signed.bytes, 0o600)?;
    write_file(&dir.join(SIGNATURE), signed.signature.as_bytes(), 0o600)
}

fn read_small(entry: impl Read, name: &str, max: u64) -> Result<Vec<u8>, UpdateError> {
    let mut bytes = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| reading(e, name))?;
    if bytes.len() as u64 > max {
        return Err(UpdateError::Damaged(format!(
            "its {name} is larger than {max} bytes"
        )));
    }
    Ok(bytes)
}

fn create(path: &Path, mode: u32) -> Result<File, UpdateError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| UpdateError::io("create", path, e))
}

/// Writes and fsyncs a whole small file (inside a staging folder, which
/// is renamed as a whole, so no rename of its own is needed).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), UpdateError> {
    let mut f = create(path, mode)?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| UpdateError::io("write", path, e))
}

/// Checks an installed slot again: its manifest's signature, and every
/// file's size and hash. Run before each start of a slot, so a slot that
/// was altered or damaged on the card is never run.
pub fn verify_slot(keys: &Keys, dir: &Path) -> Result<Signed, UpdateError> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| UpdateError::io("read", dir.join(name), e))
    };
    let signature = String::from_utf8(read(SIGNATURE)?)
        .map_err(|_| UpdateError::Damaged("its signature is not text".into()))?;
    let signed = Signed::verify(keys, read(MANIFEST)?, signature)?;
    for file in &signed.manifest.files {
        let path = dir.join(&file.name);
        let f = File::open(&path).map_err(|e| UpdateError::io("open", &path, e))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len != file.size {
            return Err(UpdateError::PayloadMismatch(file.name.clone()));
        }
        copy_checked(f, file, None)?;
        if file.name == PROGRAM {
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o111 == 0 {
                return Err(UpdateError::Damaged(format!(
                    "{} is not executable",
                    path.display()
                )));
            }
        }
    }
    Ok(signed)
}

/// Counts the bytes read for [`Progress`].
struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
