/*
 * netvm dpdk-sys shim: one small C wrapper per DPDK static-inline function netvm needs.
 * Static-inline functions have no symbol in the shared libraries, so Rust cannot call them
 * directly. Each wrapper only forwards its arguments. Plain field access (data_off,
 * data_len, pkt_len, port) is done in Rust instead: these calls cannot be inlined across
 * languages and cost a function call each.
 */
#ifndef NETVM_DPDK_SHIM_H
#define NETVM_DPDK_SHIM_H
#include <stdint.h>
#include <rte_config.h>
#include <rte_mbuf.h>

struct rte_mempool;

/* rte_eth_rx_burst */
uint16_t netvm_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
/* rte_eth_tx_burst */
uint16_t netvm_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
/* rte_pktmbuf_alloc */
struct rte_mbuf *netvm_rte_pktmbuf_alloc(struct rte_mempool *mp);
/* rte_pktmbuf_alloc_bulk: 0 on success, negative errno when the pool cannot supply count */
int netvm_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
/* rte_pktmbuf_free (whole chain) */
void netvm_rte_pktmbuf_free(struct rte_mbuf *m);
/* rte_pktmbuf_free_bulk */
void netvm_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
/* rte_errno (a per-lcore TLS variable behind a macro) */
int netvm_rte_errno(void);
/* rte_lcore_id */
unsigned netvm_rte_lcore_id(void);
/* rte_rdtsc */
uint64_t netvm_rte_rdtsc(void);
/* rte_mempool_avail_count / in_use_count are exported; rte_pktmbuf_data_room_size is inline */
uint16_t netvm_rte_pktmbuf_data_room_size(struct rte_mempool *mp);
/* rte_mbuf_refcnt_read */
uint16_t netvm_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
/* rte_pktmbuf_reset */
void netvm_rte_pktmbuf_reset(struct rte_mbuf *m);
/* RTE_PKTMBUF_HEADROOM as a value */
uint16_t netvm_rte_pktmbuf_headroom_default(void);
#endif
