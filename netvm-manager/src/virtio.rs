//! NFs of kind `virtio`: an unmodified guest with two plain virtio-net NICs, served by the
//! core through vhost-user (DPDK's `net_vhost`; the core is the server, QEMU the client).
//!
//! * **Image**: the kernel of the guest image and its `virtio-initramfs.cpio.gz`, which
//!   `scripts/build-guest.sh` builds beside the netlib image: busybox, the distro's
//!   virtio-net and bridge modules and an `/init` that bridges the two NICs with the kernel
//!   bridge — no netvm code. `program` picks the mode (`netvm.mode=` on the kernel command
//!   line): `bridge` (default) or `deaf` (NICs left down: a guest that never reads).
//! * **NICs**: `virtio-net-pci` at slot 4 (MAC `52:54:00:6e:76:01`, the core's to-guest
//!   port, socket `Config::vhost_socket(.., ToGuest)`) and slot 5 (`…:02`, from-guest); the
//!   guest's `/init` tells them apart by MAC.
//! * **Memory**: guest RAM is a `memory-backend-memfd` with `share=on` (vhost-user maps the
//!   guest's memory into the core so that the vhost library can copy frames in and out);
//!   nothing of any domain's region, nor any control region, is given to this guest.
//! * **Accelerator**: as for `kind: "vm"` ([`crate::vm::accel`]). The NICs use legacy
//!   interrupts (`vectors=0`): QEMU 7.2 with TCG segfaults in `msix_set_vector_notifiers`
//!   when vhost-user starts on an MSI-X virtio-net device (seen here; KVM is unaffected, but
//!   one setting for both keeps the guest the same).

use std::path::{Path, PathBuf};

use netvm_api::config::{Config, NfConfig, VhostDir, VmConfig};

use crate::error::ManagerError;
use crate::vm::{Accel, GuestImage};

/// The initramfs of virtio guests, next to the netlib image's.
pub const INITRD: &str = "virtio-initramfs.cpio.gz";
/// MAC of the NIC the core transmits on (the guest's input).
pub const MAC_TO_GUEST: &str = "52:54:00:6e:76:01";
/// MAC of the NIC the core receives from (the guest's output).
pub const MAC_FROM_GUEST: &str = "52:54:00:6e:76:02";

/// The virtio image's initramfs, if the guest image has one.
pub fn initrd(img: &GuestImage) -> Result<PathBuf, ManagerError> {
    let p = img.initrd.with_file_name(INITRD);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ManagerError::NoGuestImage {
            dir: img
                .initrd
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        })
    }
}

/// QEMU's arguments for virtio NF `nf` of `cfg`.
pub fn qemu_args(
    cfg: &Config,
    img: &GuestImage,
    accel: Accel,
    nf: &NfConfig,
) -> Result<Vec<String>, ManagerError> {
    let initrd = initrd(img)?;
    let vm = nf.vm.clone().unwrap_or(VmConfig {
        memory_mb: 256,
        vcpus: 1,
    });
    let mode = nf.program.as_deref().unwrap_or("bridge");
    let mem = format!("{}M", vm.memory_mb);
    let mut a = crate::vm::qemu_base_args(
        accel,
        &nf.name,
        &mem,
        vm.vcpus,
        &img.kernel,
        &initrd,
        format!("console=ttyS0 quiet panic=-1 netvm.mode={mode}"),
    );
    a.extend([
        // vhost-user needs the guest's RAM shared with the backend (the core).
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={mem},share=on"),
        "-numa".into(),
        "node,memdev=mem".into(),
    ]);
    for (k, dir, mac, slot) in [
        (0, VhostDir::ToGuest, MAC_TO_GUEST, 4),
        (1, VhostDir::FromGuest, MAC_FROM_GUEST, 5),
    ] {
        let sock = cfg.vhost_socket(&nf.name, dir);
        a.extend([
            "-chardev".into(),
            format!("socket,id=vu{k},path={}", sock.display()),
            "-netdev".into(),
            format!("vhost-user,id=vn{k},chardev=vu{k}"),
            "-device".into(),
            // No MSI-X (INTx): QEMU 7.2 under TCG dereferences a null KVM irqfd state in
            // `msix_set_vector_notifiers` when vhost starts on an MSI-X virtio device.
            format!("virtio-net-pci,netdev=vn{k},mac={mac},addr={slot:#x},vectors=0"),
        ]);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_vhost_user_nics_and_shared_memory_only() {
        let cfg: Config = serde_json::from_value(serde_json::json!({
            "name": "t", "run_dir": "/run/netvm/t",
            "workers": [{"cpu": 0}],
            "domains": [{"name": "d", "buffers": 1024}],
            "ports": [{"name": "p", "device": "net_null0", "domain": "d"}],
            "nfs": [{"name": "g", "service": "s", "kind": "virtio", "domain": "d",
                     "vm": {"memory_mb": 128}}],
            "chains": [{"name": "c", "match": {}, "services": ["s"], "egress": "p"}]
        }))
        .unwrap();
        cfg.validate().unwrap();
        let img = GuestImage {
            kernel: "/img/vmlinuz".into(),
            initrd: "/img/initramfs.cpio.gz".into(),
        };
        // The image has no virtio initramfs here.
        assert!(qemu_args(&cfg, &img, Accel::Tcg, &cfg.nfs[0]).is_err());
        let dir = std::env::temp_dir().join(format!("netvm-virtio-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(INITRD), b"x").unwrap();
        let img = GuestImage {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initramfs.cpio.gz"),
        };
        let a = qemu_args(&cfg, &img, Accel::Tcg, &cfg.nfs[0])
            .unwrap()
            .join(" ");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            a.contains("memory-backend-memfd,id=mem,size=128M,share=on"),
            "{a}"
        );
        assert!(a.contains("path=/run/netvm/t/vhost-g-to.sock"), "{a}");
        assert!(a.contains("path=/run/netvm/t/vhost-g-from.sock"), "{a}");
        assert!(a.contains("netvm.mode=bridge"), "{a}");
        assert_eq!(a.matches("virtio-net-pci").count(), 2, "{a}");
        assert!(
            !a.contains("ivshmem") && !a.contains("memory-backend-file"),
            "{a}"
        );
    }
}
