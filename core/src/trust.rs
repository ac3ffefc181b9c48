//! The trust rule for running from a layout, in the spirit of OpenSSH's `StrictModes`.
//!
//! If a group or other users can write a layout directory or a slot, they can replace what
//! every user of the program runs; so nothing on the chain ROOT -> ROOT/bin -> ROOT/bin/PROG
//! -> slot may be writable by group or others. Owners: a path may be owned by root, by the
//! user running the check, or by the owner of the layout root. Choosing a layout is trusting
//! whoever owns its root (a shared ROOT installed by an admin account is meant to be run by
//! everyone), but nobody else: a slot owned by a third account is refused. The root itself
//! may have any owner.
//!
//! ROOT's ancestors matter too: whoever can write the directory that holds ROOT (or one
//! above it) can rename ROOT away and put their own in its place. They are checked the way
//! OpenSSH's `StrictModes` checks the path to `authorized_keys`: no component writable by
//! group or others unless it is a sticky directory (like `/tmp`, where nobody can rename what
//! is not theirs), each owned by root, the user, or (since using the layout trusts them
//! anyway) the owner of the layout root.

/// The mode bits that let someone other than the owner write: group and others' write.
pub const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Who besides the owner can write a file of this mode (`"others"`, `"its group"`), or
/// `None` when nobody can.
pub fn other_writers(mode: u32) -> Option<&'static str> {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => Some("others"),
        (true, false) => Some("its group"),
        (false, false) => None,
    }
}

/// Whether a path owned by `owner` may be trusted: root, the layout root's owner (when
/// checking inside a layout), or the user, whose id `me` gives (asked last, and only when
/// needed, as it may cost a system call).
pub fn owner_trusted(owner: u32, root_owner: Option<u32>, me: impl FnOnce() -> u32) -> bool {
    owner == 0 || Some(owner) == root_owner || owner == me()
}

/// Both rules for a path inside a layout whose root is owned by `root_owner`.
pub fn trusted(mode: u32, owner: u32, root_owner: Option<u32>, me: impl FnOnce() -> u32) -> bool {
    other_writers(mode).is_none() && owner_trusted(owner, root_owner, me)
}

/// The file type bits of a mode, and the type of a directory (`S_IFMT`, `S_IFDIR`).
const TYPE_MASK: u32 = 0o170_000;
const DIRECTORY: u32 = 0o040_000;
/// The sticky bit: in a directory, only an entry's owner may rename or remove it.
const STICKY: u32 = 0o1000;

/// Whether a mode is that of a sticky directory.
pub fn is_sticky_dir(mode: u32) -> bool {
    mode & TYPE_MASK == DIRECTORY && mode & STICKY != 0
}

/// The rule for a directory above the layout root (or above the real path of a slot
/// reached through a symlink): writable by nobody but its owner, or a sticky directory;
/// owned by root, the user, or the layout root's owner.
pub fn ancestor_trusted(mode: u32, owner: u32, root_owner: u32, me: impl FnOnce() -> u32) -> bool {
    (other_writers(mode).is_none() || is_sticky_dir(mode))
        && owner_trusted(owner, Some(root_owner), me)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(other_writers(0o755), None);
        assert_eq!(other_writers(0o775), Some("its group"));
        assert_eq!(other_writers(0o757), Some("others"));
        assert_eq!(other_writers(0o777), Some("others"));
        assert_eq!(other_writers(0o1755), None);
    }

    #[test]
    fn owners() {
        let me = || 1000;
        assert!(owner_trusted(0, None, me));
        assert!(owner_trusted(1000, None, me));
        assert!(!owner_trusted(1001, None, me));
        assert!(owner_trusted(1001, Some(1001), me));
        assert!(owner_trusted(0, Some(5), || panic!(
            "not asked when root owns it"
        )));
        assert!(!trusted(0o775, 0, None, me));
    }

    #[test]
    fn both_rules() {
        let me = || 1000;
        // Each rule alone passes these, so `trusted` must say yes.
        assert!(trusted(0o755, 0, None, me));
        assert!(trusted(0o100_644, 1000, None, me));
        assert!(trusted(0o040_700, 1001, Some(1001), me));
        // And each rule alone can refuse.
        assert!(!trusted(0o757, 1000, None, me));
        assert!(!trusted(0o755, 1001, None, me));
        assert!(!trusted(0o755, 1001, Some(1002), me));
    }

    #[test]
    fn ancestors() {
        let me = || 1000;
        // /tmp: world-writable but sticky.
        assert!(ancestor_trusted(0o041_777, 0, 5, me));
        // The same without the sticky bit, or a sticky plain file, is not.
        assert!(!ancestor_trusted(0o040_777, 0, 5, me));
        assert!(!ancestor_trusted(0o101_777, 0, 5, me));
        assert!(!ancestor_trusted(0o040_775, 0, 5, me));
        assert!(ancestor_trusted(0o040_755, 1000, 5, me));
        assert!(ancestor_trusted(0o040_755, 5, 5, me));
        assert!(!ancestor_trusted(0o040_755, 6, 5, me));
        assert!(!ancestor_trusted(0o041_777, 6, 5, me));
    }
}
