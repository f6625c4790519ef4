//! Where a restored file is written until it is complete: unnamed, or
//! under a temporary name, never half-written under its real one.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use crate::error::{BackupError, IoContext};

/// Whether files can be written unnamed in `dir` and linked in, tried
/// once per restore with a probe file. It takes `O_TMPFILE` in the file
/// system and a /proc/self/fd to link through (linkat with AT_EMPTY_PATH
/// needs a capability Hearth does not have), and a sandbox or a FAT stick
/// can lack either; then every file takes the temporary-name way.
pub(super) fn unnamed_works(dir: &Path) -> bool {
    let probe = dir.join(".hearth-restore-probe");
    match Output::create(&probe, true) {
        Ok(out @ Output::Unnamed(_)) => {
            let Ok(name) = temp_name(&probe) else {
                return false;
            };
            let linked = out.commit(&name).is_ok();
            let _ = std::fs::remove_file(&name);
            linked
        }
        Ok(named) => {
            named.discard();
            false
        }
        Err(_) => false,
    }
}

/// A file being written: unnamed (`O_TMPFILE`) until it is complete, or,
/// where the file system cannot do that, under a temporary name beside the
/// real one.
pub(super) enum Output {
    Unnamed(File),
    Named(File, PathBuf),
}

impl Output {
    /// An unnamed file in `dest`'s folder (when `unnamed`) takes no lock on
    /// the folder while it is created and written, so writers in one folder
    /// do not queue on each other, and a crash leaves nothing behind.
    pub(super) fn create(dest: &Path, unnamed: bool) -> Result<Output, BackupError> {
        use rustix::fs::{Mode, OFlags};
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if unnamed {
            match rustix::fs::open(
                dir,
                OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => return Ok(Output::Unnamed(File::from(fd))),
                // Not every file system has O_TMPFILE (FAT, some FUSE).
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {}
                Err(e) => return Err(std::io::Error::from(e)).at(dest),
            }
        }
        let tmp = temp_name(dest)?;
        let file = File::create(&tmp).at(&tmp)?;
        Ok(Output::Named(file, tmp))
    }

    pub(super) fn file(&mut self) -> &mut File {
        match self {
            Output::Unnamed(f) | Output::Named(f, _) => f,
        }
    }

    /// Gives the complete file its real name. An unnamed file is linked in
    /// directly; if the name is taken (restoring in place) it is linked
    /// beside it and renamed over it, so the old file is replaced whole.
    pub(super) fn commit(self, dest: &Path) -> Result<(), BackupError> {
        use rustix::fs::{AtFlags, CWD, linkat};
        match self {
            Output::Named(_, tmp) => std::fs::rename(&tmp, dest).at(dest).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            }),
            Output::Unnamed(f) => {
                use std::os::fd::AsRawFd;
                let proc = format!("/proc/self/fd/{}", f.as_raw_fd());
                let link = |to: &Path| linkat(CWD, &proc, CWD, to, AtFlags::SYMLINK_FOLLOW);
                match link(dest) {
                    Ok(()) => Ok(()),
                    // Named beside it, then renamed over it like any other.
                    Err(rustix::io::Errno::EXIST) => {
                        let tmp = temp_name(dest)?;
                        link(&tmp).map_err(std::io::Error::from).at(&tmp)?;
                        Output::Named(f, tmp).commit(dest)
                    }
                    Err(e) => Err(std::io::Error::from(e)).at(dest),
                }
            }
        }
    }

    /// Drops an unfinished file: an unnamed one simply vanishes.
    pub(super) fn discard(self) {
        if let Output::Named(_, tmp) = self {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A short temporary name beside `dest`: the real one may be 255 bytes.
fn temp_name(dest: &Path) -> Result<PathBuf, BackupError> {
    let mut rnd = [0u8; 6];
    crate::key::random(&mut rnd)?;
    Ok(dest.with_file_name(format!(".hearth-restore-{}", hex::encode(rnd))))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    /// Both ways of writing: a new name, a name already taken (replaced
    /// whole, and only once complete), and a discarded file that leaves
    /// nothing behind.
    #[test]
    fn complete_files_take_their_name_and_discarded_ones_vanish() {
        for unnamed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("a.txt");
            let mut out = Output::create(&dest, unnamed).unwrap();
            assert_eq!(matches!(out, Output::Unnamed(_)), unnamed);
            out.file().write_all(b"first").unwrap();
            assert!(!dest.exists(), "no name before it is complete");
            out.commit(&dest).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), b"first");

            let mut out = Output::create(&dest, unnamed).unwrap();
            out.file().write_all(b"second").unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), b"first", "not yet");
            out.commit(&dest).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), b"second");

            let other = dir.path().join("b.txt");
            let mut out = Output::create(&other, unnamed).unwrap();
            out.file().write_all(b"never").unwrap();
            out.discard();
            assert_eq!(names(dir.path()), ["a.txt"], "unnamed={unnamed}");
        }
    }

    /// The probe works where it should (a tmp dir on this machine's file
    /// system), fails where it cannot, and leaves nothing behind.
    #[test]
    fn the_probe_leaves_nothing_and_fails_on_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(unnamed_works(dir.path()), "O_TMPFILE and /proc here");
        assert!(names(dir.path()).is_empty());
        assert!(!unnamed_works(&dir.path().join("gone")));
    }
}
