//! A shared ROOT on a real network filesystem: a test cluster node's sshd exports a directory
//! (the file server), sshfs mounts it on this machine (the client), and programs installed on
//! the server run on the client through the mount. Needs root, OpenSSH, sshfs and /dev/fuse
//! (see `fatbin_tests::sshfs`).

use std::path::Path;
use std::process::Command;

use fatbin_tests::cluster::{Cluster, Kind};
use fatbin_tests::sshfs::{self, Caching, Mount};

/// A cluster with one native node, `server`, whose sshd exports directories.
fn server() -> Cluster {
    sshfs::require();
    let mut cluster = Cluster::new();
    cluster.add_node("server", Kind::Native);
    cluster
}

#[test]
fn sshfs_mount_shows_the_servers_files_and_is_gone_after_drop() {
    let cluster = server();
    let export = fatbin_tests::temp_dir();
    std::fs::write(export.path().join("hello"), "from the server\n").unwrap();
    for caching in [Caching::Default, Caching::Off] {
        let mount = Mount::new(&cluster, "server", export.path(), caching);
        let mnt = mount.path.clone();
        assert_eq!(
            std::fs::read_to_string(mnt.join("hello")).unwrap(),
            "from the server\n",
            "{caching:?}"
        );
        // Written through the mount, seen on the server.
        std::fs::write(mnt.join("back"), "from the client\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(export.path().join("back")).unwrap(),
            "from the client\n"
        );
        std::fs::remove_file(export.path().join("back")).unwrap();
        // A regular executable file runs through the mount.
        std::fs::copy("/bin/true", export.path().join("true")).unwrap();
        let status = Command::new(mnt.join("true")).status().unwrap();
        assert!(status.success(), "{caching:?}: exec through the mount");
        std::fs::remove_file(export.path().join("true")).unwrap();
        drop(mount);
        assert!(!sshfs::is_mount_point(&mnt), "{caching:?}: still mounted");
        assert!(!Path::new(&mnt).exists() || !mnt.join("hello").exists());
    }
}
