//! A data directory with a repository, and tree helpers, shared by the
//! backup test modules.

use std::{
    collections::HashMap,
    fs,
    os::unix::{
        ffi::OsStrExt,
        fs::{MetadataExt, PermissionsExt, symlink},
    },
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use crate::util::run_backup;

pub const PASSPHRASE: &str = "a long recovery passphrase";

/// A data directory with an initialised repository.
pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let lab = Lab::bare();
        fs::write(lab.path("pp"), format!("{PASSPHRASE}\n")).unwrap();
        let pp = lab.path("pp");
        let (code, _, err) = lab.hearth(&["init", "--passphrase-file", pp.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        lab
    }

    pub fn bare() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hearth.toml"), "").unwrap();
        Lab { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// `hearth backup --data DATA ARGS...`
    pub fn hearth(&self, args: &[&str]) -> (i32, String, String) {
        run_backup(&self.path("hearth.toml"), &self.data(), args)
    }

    /// The same, with extra environment variables.
    pub fn hearth_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        crate::util::run_backup_env(&self.path("hearth.toml"), &self.data(), args, env)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.hearth(args);
        assert_eq!(code, 0, "hearth backup {args:?}: {err}");
        out
    }

    pub fn sql(&self, query: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(self.data().join("hearth.db"))
            .arg(query)
            .output()
            .expect("sqlite3 is installed by the README's test command");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    fs::File::open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(t))
        .unwrap();
}

/// A folder with every kind of thing a backup must carry.
pub fn awkward_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/inner")).unwrap();
    fs::create_dir(root.join("empty_dir")).unwrap();
    fs::write(root.join("plain.txt"), "hello, hearth\n".repeat(5000)).unwrap();
    fs::set_permissions(root.join("plain.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("big.bin"), noise(12 << 20, 7)).unwrap();
    fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    // Not UTF-8, and as long as a name may be.
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff.txt");
    fs::write(root.join(latin1), b"latin-1 name").unwrap();
    fs::write(root.join("L".repeat(255)), b"long name").unwrap();
    // Deep nesting.
    let mut deep = root.join("deep");
    for i in 0..60 {
        deep = deep.join(format!("level{i:02}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom.txt"), b"at the bottom").unwrap();
    // Links: good, dangling, hard.
    symlink("plain.txt", root.join("link")).unwrap();
    symlink("nowhere/at/all", root.join("dangling")).unwrap();
    fs::write(root.join("hard_a"), b"one inode, two names").unwrap();
    fs::hard_link(root.join("hard_a"), root.join("sub/inner/hard_b")).unwrap();
    // Sparse: 40 MiB with 3 bytes of data in the middle.
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(40 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_at(b"hi!", 20 << 20).unwrap();
    // Precise times, set last (writing inside a folder changes its mtime).
    set_mtime(&root.join("plain.txt"), 1_600_000_000, 123_456_789);
    set_mtime(&root.join("big.bin"), 1_500_000_000, 1);
    set_mtime(&root.join("sub/inner"), 1_400_000_000, 999_999_999);
    set_mtime(&root.join("sub"), 1_300_000_000, 5);
}

/// Asserts two trees are the same to a person and to `stat`: names, kinds,
/// contents, modes, mtimes to the nanosecond, link targets, hardlink groups.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut links_a: HashMap<u64, PathBuf> = HashMap::new();
    let mut pairs: Vec<(u64, u64)> = vec![];
    compare_dir(a, b, Path::new(""), &mut links_a, &mut pairs);
    // Every hardlink group in `a` is one inode in `b`.
    let mut map: HashMap<u64, u64> = HashMap::new();
    for (ia, ib) in pairs {
        assert_eq!(*map.entry(ia).or_insert(ib), ib, "hardlink group split");
    }
}

pub fn compare_dir(
    a: &Path,
    b: &Path,
    rel: &Path,
    links: &mut HashMap<u64, PathBuf>,
    pairs: &mut Vec<(u64, u64)>,
) {
    let names = |p: &Path| {
        let mut v: Vec<_> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b), "entries of {}", rel.display());
    for name in names(a) {
        let (pa, pb, r) = (a.join(&name), b.join(&name), rel.join(&name));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "kind of {}", r.display());
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {}",
            r.display()
        );
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&pa).unwrap(),
                fs::read_link(&pb).unwrap(),
                "{}",
                r.display()
            );
            continue;
        }
        assert_eq!(
            ma.mode() & 0o7777,
            mb.mode() & 0o7777,
            "mode of {}",
            r.display()
        );
        if ma.is_dir() {
            compare_dir(&pa, &pb, &r, links, pairs);
        } else {
            assert_eq!(ma.len(), mb.len(), "size of {}", r.display());
            assert!(
                fs::read(&pa).unwrap() == fs::read(&pb).unwrap(),
                "content of {}",
                r.display()
            );
            if ma.nlink() > 1 {
                links.insert(ma.ino(), r.clone());
                pairs.push((ma.ino(), mb.ino()));
                assert_eq!(ma.nlink(), mb.nlink(), "link count of {}", r.display());
            }
        }
    }
}

/// Copies a flat folder of files, keeping mtimes, as a reference.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        fs::copy(e.path(), &dest).unwrap();
        let md = e.metadata().unwrap();
        set_mtime(&dest, md.mtime() as u64, md.mtime_nsec() as u32);
    }
    let md = fs::metadata(from).unwrap();
    fs::set_permissions(to, md.permissions()).unwrap();
}
