//! Restores that cannot escape: the copier between two real directory trees (any source —
//! snapshot mount, rsync generation, unpacked archive — is a tree to it), with links planted on
//! both sides, parents that must stay as they are, hard links and hostile names. The same cases
//! run against real snapshots and backups in the VM (restore-confined.sh).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use lvsnap::confine::copy::{copy, plan};
use lvsnap::confine::open_root;

struct Trees {
    _dir: tempfile::TempDir,
    src: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

/// A source tree with a canary outside it that no restore may read, and an empty destination.
fn trees() -> Trees {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dest = dir.path().join("dest");
    let outside = dir.path().join("outside");
    for d in [&src, &dest, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(outside.join("canary"), "CANARY: must never be read\n").unwrap();
    std::fs::create_dir_all(src.join("alice/real")).unwrap();
    std::fs::write(src.join("alice/real/file"), "alice's file\n").unwrap();
    symlink(&outside, src.join("alice/abs")).unwrap();
    symlink("../../outside", src.join("alice/rel")).unwrap();
    symlink("rel", src.join("alice/chain")).unwrap();
    symlink("real", src.join("alice/dirlink")).unwrap();
    Trees {
        _dir: dir,
        src,
        dest,
        outside,
    }
}

fn restore(t: &Trees, paths: &[&str], force: bool) -> Result<(), String> {
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let src = open_root(&t.src).unwrap();
    let dest = open_root(&t.dest).unwrap();
    let p = plan(&src, Some(&dest), &paths)?;
    if !p.missing.is_empty() {
        return Err(format!("missing {:?}", p.missing));
    }
    if !force && p.conflicts().count() > 0 {
        return Err("conflicts".to_owned());
    }
    copy(&src, &dest, &p, force, &AtomicBool::new(false))
}

#[test]
fn a_cancelled_copy_stops_before_the_next_entry_and_says_so() {
    let t = trees();
    let src = open_root(&t.src).unwrap();
    let dest = open_root(&t.dest).unwrap();
    let p = plan(&src, Some(&dest), &[PathBuf::from("alice")]).unwrap();
    assert!(p.items.len() > 1);
    let e = copy(&src, &dest, &p, false, &AtomicBool::new(true)).unwrap_err();
    assert!(
        e.starts_with("interrupted by a signal before alice:"),
        "{e}"
    );
    assert!(!t.dest.join("alice").exists());
}

/// Every file below `dir`, by content: no canary anywhere.
fn assert_no_canary(dir: &Path) {
    for e in walk(dir) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        if m.is_file() {
            let text = std::fs::read(&e).unwrap();
            assert!(
                !text.starts_with(b"CANARY"),
                "{} holds the canary from outside the source",
                e.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_path_through_a_link_in_the_source_is_refused_and_names_the_link() {
    let t = trees();
    for (path, link) in [
        ("alice/abs/canary", "alice/abs"),
        ("alice/rel/canary", "alice/rel"),
        ("alice/chain/canary", "alice/chain"),
        ("alice/dirlink/file", "alice/dirlink"),
    ] {
        let err = restore(&t, &[path], false).unwrap_err();
        assert!(
            err.contains(&format!("goes through {link}, a symbolic link")),
            "{path}: {err}"
        );
    }
    assert!(
        std::fs::read_dir(&t.dest).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn links_are_restored_as_links_and_never_read_through() {
    let t = trees();
    restore(&t, &["alice"], false).unwrap();
    for (name, target) in [
        ("abs", t.outside.to_str().unwrap()),
        ("rel", "../../outside"),
        ("chain", "rel"),
        ("dirlink", "real"),
    ] {
        let p = t.dest.join("alice").join(name);
        assert!(std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_link(&p).unwrap(), Path::new(target));
    }
    assert_eq!(
        std::fs::read_to_string(t.dest.join("alice/real/file")).unwrap(),
        "alice's file\n"
    );
    assert_no_canary(&t.dest);
}

#[test]
fn a_link_in_the_destination_is_in_the_way_and_nothing_is_written_through_it() {
    let t = trees();
    symlink(&t.outside, t.dest.join("alice")).unwrap();
    let err = restore(&t, &["alice/real/file"], false).unwrap_err();
    assert_eq!(err, "conflicts");
    // Even when told to overwrite, the link is replaced, never followed.
    restore(&t, &["alice/real/file"], true).unwrap();
    assert!(std::fs::symlink_metadata(t.dest.join("alice"))
        .unwrap()
        .is_dir());
    let outside: Vec<_> = std::fs::read_dir(&t.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![OsStr::new("canary").to_owned()]);
}

#[test]
fn existing_parents_are_left_exactly_as_they_are() {
    let t = trees();
    let a = t.dest.join("alice");
    std::fs::create_dir(&a).unwrap();
    std::os::unix::fs::chown(&a, Some(2000), Some(2000)).unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o700)).unwrap();
    let xattr_set = std::process::Command::new("setfattr")
        .args(["-n", "user.keep", "-v", "me"])
        .arg(&a)
        .status()
        .is_ok_and(|s| s.success());
    let before = std::fs::metadata(&a).unwrap();
    restore(&t, &["alice/real/file"], false).unwrap();
    let after = std::fs::metadata(&a).unwrap();
    assert_eq!(
        (
            after.uid(),
            after.gid(),
            after.mode(),
            after.mtime(),
            after.mtime_nsec()
        ),
        (
            before.uid(),
            before.gid(),
            before.mode(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    if xattr_set {
        let out = std::process::Command::new("getfattr")
            .args(["-n", "user.keep", "--only-values"])
            .arg(&a)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"me");
    }
    // The missing parent was created with the source's mode.
    let src_mode = std::fs::metadata(t.src.join("alice/real")).unwrap().mode();
    assert_eq!(
        std::fs::metadata(t.dest.join("alice/real")).unwrap().mode(),
        src_mode
    );
}

#[test]
fn the_plan_names_the_parents_it_creates() {
    let t = trees();
    let src = open_root(&t.src).unwrap();
    let dest = open_root(&t.dest).unwrap();
    let p = plan(&src, Some(&dest), &[PathBuf::from("alice/real/file")]).unwrap();
    let parents: Vec<&Path> = p.parents().collect();
    assert_eq!(parents, [Path::new("alice"), Path::new("alice/real")]);
    assert_eq!(p.files().count(), 1);
}

#[test]
fn one_name_of_a_hard_linked_file_and_all_names_together() {
    let t = trees();
    std::fs::create_dir_all(t.src.join("hl")).unwrap();
    std::fs::write(t.src.join("hl/a"), "shared\n").unwrap();
    std::fs::hard_link(t.src.join("hl/a"), t.src.join("hl/b")).unwrap();
    std::fs::hard_link(t.src.join("hl/a"), t.src.join("hl/c")).unwrap();
    restore(&t, &["hl/b"], false).unwrap();
    assert_eq!(
        std::fs::read_to_string(t.dest.join("hl/b")).unwrap(),
        "shared\n"
    );
    restore(&t, &["hl"], true).unwrap();
    let ino = |n: &str| std::fs::metadata(t.dest.join("hl").join(n)).unwrap().ino();
    assert_eq!(ino("a"), ino("b"));
    assert_eq!(ino("a"), ino("c"));
}

#[test]
fn hostile_names_restore_by_their_exact_bytes() {
    let t = trees();
    let names: [&[u8]; 3] = [b"new\nline", b"esc\x1b[2Jape", b"bad\xffbyte"];
    std::fs::create_dir(t.src.join("odd")).unwrap();
    for n in names {
        std::fs::write(t.src.join("odd").join(OsStr::from_bytes(n)), n).unwrap();
    }
    for n in names {
        let mut rel = b"odd/".to_vec();
        rel.extend_from_slice(n);
        let rel = PathBuf::from(OsStr::from_bytes(&rel));
        let src = open_root(&t.src).unwrap();
        let dest = open_root(&t.dest).unwrap();
        let p = plan(&src, Some(&dest), std::slice::from_ref(&rel)).unwrap();
        copy(&src, &dest, &p, false, &AtomicBool::new(false)).unwrap();
        assert_eq!(std::fs::read(t.dest.join(&rel)).unwrap(), n);
    }
}

#[test]
fn an_existing_file_is_never_overwritten_without_force() {
    let t = trees();
    std::fs::create_dir_all(t.dest.join("alice/real")).unwrap();
    std::fs::write(t.dest.join("alice/real/file"), "local edit\n").unwrap();
    assert_eq!(
        restore(&t, &["alice/real/file"], false).unwrap_err(),
        "conflicts"
    );
    assert_eq!(
        std::fs::read_to_string(t.dest.join("alice/real/file")).unwrap(),
        "local edit\n"
    );
    restore(&t, &["alice/real/file"], true).unwrap();
    assert_eq!(
        std::fs::read_to_string(t.dest.join("alice/real/file")).unwrap(),
        "alice's file\n"
    );
}

#[test]
fn sparse_files_stay_sparse_and_metadata_is_kept() {
    let t = trees();
    let f = t.src.join("sparse");
    let file = std::fs::File::create(&f).unwrap();
    file.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&file, b"end", (64 << 20) - 3).unwrap();
    drop(file);
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    restore(&t, &["sparse"], false).unwrap();
    let m = std::fs::metadata(t.dest.join("sparse")).unwrap();
    assert_eq!(m.len(), 64 << 20);
    assert!(m.blocks() * 512 < 1 << 20, "{} blocks", m.blocks());
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 5678, 0o640));
    let src = std::fs::metadata(&f).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (src.mtime(), src.mtime_nsec()));
}

/// A destination is opened from `/`: through links only root could have made, never through
/// one in a directory a user can change (who could otherwise send the restore elsewhere).
#[test]
fn a_destination_is_never_reached_through_a_link_a_user_could_plant() {
    use lvsnap::confine::open_named_dir;
    let t = tempfile::tempdir().unwrap();
    let base = t.path();
    let target = base.join("target");
    std::fs::create_dir(&target).unwrap();
    // alice's directory, with a link in it to a directory of root's.
    let alice = base.join("alice");
    std::fs::create_dir(&alice).unwrap();
    symlink(&target, alice.join("x")).unwrap();
    std::os::unix::fs::lchown(alice.join("x"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(&alice, Some(65534), Some(65534)).unwrap();
    let e = open_named_dir(&alice.join("x/out"), true).unwrap_err();
    assert!(
        e.contains(&format!(
            "goes through {}, a symbolic link (to {}) in a directory that uid 65534 owns",
            alice.join("x").display(),
            target.display()
        )),
        "{e}"
    );
    assert!(!target.join("out").exists(), "created through the link");
    // The same link in a directory only root can change is root's doing: followed.
    let roots = base.join("roots");
    std::fs::create_dir(&roots).unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink(&target, roots.join("x")).unwrap();
    let fd = open_named_dir(&roots.join("x/new/out"), true).unwrap();
    assert!(target.join("new/out").is_dir());
    let st = rustix::fs::fstat(&fd).unwrap();
    assert_eq!(
        st.st_ino,
        std::fs::metadata(target.join("new/out")).unwrap().ino()
    );
    assert_eq!(
        std::fs::metadata(target.join("new"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    // A relative link with ".." (as /var/run -> ../run) goes back up the way it came.
    std::fs::create_dir(roots.join("deep")).unwrap();
    symlink("../x/new", roots.join("deep/up")).unwrap();
    let fd = open_named_dir(&roots.join("deep/up/out"), false).unwrap();
    assert_eq!(
        rustix::fs::fstat(&fd).unwrap().st_ino,
        std::fs::metadata(target.join("new/out")).unwrap().ino()
    );
    // A directory that anyone may write to is no better than alice's.
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = open_named_dir(&roots.join("x"), false).unwrap_err();
    assert!(
        e.contains("in a directory others may write to (mode 777)"),
        "{e}"
    );
    // Missing, without creating; `..`; relative.
    assert!(open_named_dir(&base.join("none"), false)
        .unwrap_err()
        .ends_with("does not exist"));
    assert!(open_named_dir(&base.join("target/../target"), false)
        .unwrap_err()
        .contains("\"..\""));
    assert!(open_named_dir(Path::new("rel"), false).is_err());
}
