//! The layout library against real binaries: identification, install round trips, atomicity.

use fatbin_layout::{identify_path, Identity, Libc};
use fatbin_tests::probe_binary;

#[test]
fn identifies_a_static_aarch64_musl_binary() {
    let Identity::Elf(info) =
        identify_path(&probe_binary("aarch64-unknown-linux-musl", None)).unwrap()
    else {
        panic!("not ELF")
    };
    assert_eq!(info.arch, Some(fatbin_layout::Arch::Aarch64));
    assert_eq!(info.libc, Libc::Static);
}
