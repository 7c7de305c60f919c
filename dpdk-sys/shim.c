/* See shim.h: each function forwards to one DPDK static-inline function. */
#include <rte_config.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include "shim.h"

uint16_t netvm_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{ return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts); }

uint16_t netvm_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{ return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts); }

struct rte_mbuf *netvm_rte_pktmbuf_alloc(struct rte_mempool *mp)
{ return rte_pktmbuf_alloc(mp); }

int netvm_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }

void netvm_rte_pktmbuf_free(struct rte_mbuf *m)
{ rte_pktmbuf_free(m); }

void netvm_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count)
{ rte_pktmbuf_free_bulk(mbufs, count); }

int netvm_rte_errno(void)
{ return rte_errno; }

unsigned netvm_rte_lcore_id(void)
{ return rte_lcore_id(); }

uint64_t netvm_rte_rdtsc(void)
{ return rte_rdtsc(); }

uint16_t netvm_rte_pktmbuf_data_room_size(struct rte_mempool *mp)
{ return rte_pktmbuf_data_room_size(mp); }

uint16_t netvm_rte_mbuf_refcnt_read(const struct rte_mbuf *m)
{ return rte_mbuf_refcnt_read(m); }

void netvm_rte_pktmbuf_reset(struct rte_mbuf *m)
{ rte_pktmbuf_reset(m); }

uint16_t netvm_rte_pktmbuf_headroom_default(void)
{ return RTE_PKTMBUF_HEADROOM; }
