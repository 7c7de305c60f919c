//! netvm-api: what the data plane and its clients agree on, without DPDK.
//!
//! What is in it:
//! * [`config`]: the JSON configuration of an instance, its limits ([`config::MAX_PORTS`] …)
//!   and [`Config::validate`](config::Config::validate); the schema shipped in
//!   `schema/netvm-config.schema.json` is generated from these types;
//! * [`buffer`]: the size of a packet buffer in a domain's region ([`buffer::BUF_SIZE`]);
//! * [`report`]: the stats [`Report`](report::Report) the core serves and prints at exit, and
//!   the names its maps are keyed by ([`DropReason`](report::DropReason),
//!   [`verdict_idx`](report::verdict_idx));
//! * [`protocol`]: the control socket's typed requests ([`Request`](protocol::Request)) and
//!   answers, one JSON object per line each way;
//! * [`capture`]: capture points, the capture filter syntax, captured frames in answers;
//! * [`numa`]: the NUMA placement rule ([`Config::check_numa`](config::Config::check_numa))
//!   against a [`NumaTopology`](numa::NumaTopology) the caller reads (hwloc in the manager).
//!
//! What it is not: no DPDK, no shared memory, no I/O beyond reading a config file. `netvm-core`
//! re-exports [`config`] and builds reports and answers from these types; `netvm-manager` and
//! the fuzz targets use this crate alone, so they link no DPDK. The shared-memory ABI is in
//! `netvm-shm`.
#![warn(missing_docs)]

pub mod buffer;
pub mod capture;
pub mod config;
pub mod numa;
pub mod protocol;
pub mod report;
