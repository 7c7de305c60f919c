//! Build script: finds the system DPDK with pkg-config, generates bindings with bindgen and
//! compiles the C shim with `cc`, giving both exactly the cflags pkg-config reports.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Dynamic linking by default: the EAL then loads PMDs (net_null, net_pcap, net_memif, ...)
    // from its plugin directory (RTE_EAL_PMD_PATH of the distro build).
    let lib = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            eprintln!(
                "\nerror: DPDK 22.11 not found through pkg-config (libdpdk): {e}\n\
                 On Debian 12 install it with: apt-get install libdpdk-dev dpdk-dev pkg-config\n\
                 (or run scripts/setup.sh as root, which installs every package netvm needs).\n"
            );
            std::process::exit(1);
        }
    };

    // The same flag list for bindgen and cc: include paths, `-include rte_config.h`, -march, defines.
    let cflags = pkg_config_cflags();
    let mut clang_args: Vec<String> = cflags.clone();
    clang_args.push("-DALLOW_EXPERIMENTAL_API".into());
    clang_args.push("-I.".into());

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_eal_(init|cleanup|process_type|has_hugepages)")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_socket_id|rte_lcore_count|rte_get_main_lcore|rte_get_tsc_hz|rte_thread_register|rte_thread_unregister|rte_eal_remote_launch|rte_eal_wait_lcore|rte_lcore_to_cpu_id")
        .allowlist_function("rte_dev_probe|rte_dev_remove|rte_eal_hotplug_remove")
        .allowlist_function("rte_eth_dev_(configure|start|stop|close|count_avail|get_port_by_name|get_name_by_port|info_get|socket_id|is_valid_port|set_mtu|get_mtu|adjust_nb_rx_tx_desc)")
        .allowlist_function("rte_eth_(rx|tx)_queue_setup")
        .allowlist_function("rte_eth_(stats_get|stats_reset|macaddr_get|link_get_nowait|promiscuous_enable)")
        .allowlist_function("rte_eth_iterator_(init|next|cleanup)")
        .allowlist_function("rte_pktmbuf_pool_create(_extbuf)?")
        .allowlist_function("rte_mempool_(free|avail_count|in_use_count|lookup)")
        .allowlist_function("rte_extmem_(register|unregister)")
        .allowlist_function("rte_eal_iova_mode|rte_mem_virt2iova|rte_mem_virt2memseg|rte_mem_virt2memseg_list")
        .allowlist_function("rte_dev_dma_(map|unmap)|rte_dev_bus|rte_dev_name|rte_bus_name")
        .allowlist_function("rte_version")
        .allowlist_function("rte_vhost_(get_ifname|avail_entries|rx_queue_count)")
        .allowlist_function("netvm_.*")
        .allowlist_type("rte_mbuf|rte_mempool|rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_eth_link|rte_ether_addr|rte_pktmbuf_extmem|rte_eth_rxconf|rte_eth_txconf|rte_dev_iterator")
        .allowlist_var("RTE_MAX_ETHPORTS|RTE_PKTMBUF_HEADROOM|RTE_MBUF_DEFAULT_BUF_SIZE|RTE_ETH_NAME_MAX_LEN|RTE_MEMPOOL_CACHE_MAX_SIZE|SOCKET_ID_ANY|RTE_ETH_LINK_UP|RTE_ETH_LINK_FULL_DUPLEX|RTE_ETHER_ADDR_LEN|RTE_MBUF_F_.*|RTE_ETH_MQ_.*")
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| {
            eprintln!("\nerror: bindgen failed on the DPDK headers: {e}\nbindgen needs libclang: apt-get install libclang-dev clang\n");
            std::process::exit(1);
        });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs to OUT_DIR");

    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .define("ALLOW_EXPERIMENTAL_API", None)
        .opt_level(3);
    for p in &lib.include_paths {
        build.include(p);
    }
    for f in &cflags {
        if !f.starts_with("-I") {
            build.flag(f);
        }
    }
    build.compile("netvm_dpdk_shim");
}

/// `pkg-config --cflags libdpdk` split into arguments (`-include rte_config.h` stays two words).
fn pkg_config_cflags() -> Vec<String> {
    let out =
        std::process::Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
            .args(["--cflags", "libdpdk"])
            .output()
            .expect("run pkg-config --cflags libdpdk");
    assert!(out.status.success(), "pkg-config --cflags libdpdk failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
