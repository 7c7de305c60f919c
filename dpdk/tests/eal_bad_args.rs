//! Bad EAL arguments and a missing hugetlbfs give typed errors, not a panic or an abort; a
//! corrected init afterwards succeeds, and a second init is refused.
use dpdk::{EalBuilder, EalError};

#[test]
fn bad_arguments_are_typed_errors() {
    let e = EalBuilder::new("bad")
        .arg("--definitely-not-an-eal-option")
        .init()
        .unwrap_err();
    assert!(matches!(e, EalError::InitFailed { .. }), "{e:?}");
    println!("bad option: {e}");

    let e = EalBuilder::new("bad").arg("nul\0byte").init().unwrap_err();
    assert!(matches!(e, EalError::NulInArgument { .. }), "{e:?}");

    // Hugepage memory from a directory that is not a hugetlbfs mount.
    let e = EalBuilder::new("nohuge")
        .lcores("0")
        .huge_dir("/nonexistent-netvm-hugetlbfs")
        .init();
    match e {
        Err(e @ EalError::NoHugepages { .. }) => println!("missing hugetlbfs: {e}"),
        other => panic!("expected a typed error for a missing hugetlbfs, got {other:?}"),
    }

    let (b, fell_back) = EalBuilder::new("good").lcores("0").huge_or_fallback(128);
    if fell_back {
        println!("NOTE: no hugepages; corrected init uses --no-huge");
    }
    let eal = b.init().expect("corrected init succeeds");
    assert!(eal.tsc_hz() > 0);
    let e = EalBuilder::new("again").no_huge(64).init().unwrap_err();
    assert!(matches!(e, EalError::AlreadyInitialized), "{e:?}");
}
