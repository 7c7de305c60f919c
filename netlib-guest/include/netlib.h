/*
 * netlib.h — C API of netlib-guest, the netvm network-function library.
 *
 * Link with libnetlib_guest.a (built by `cargo build -p netlib-guest`, in target/<profile>/)
 * and the system libraries Rust's standard library needs:
 *     cc nf.c -I netlib-guest/include target/release/libnetlib_guest.a \
 *        -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
 *
 * Model. The netvm core owns a shared-memory region per trust domain, reserves a slot in it
 * for each configured NF name, and hands packets to the NF as descriptors on RX rings; the NF
 * processes each packet in place (no copy), sets a verdict and returns the descriptor on its
 * TX ring. The library hides the rings: a C NF either
 *   - registers a per-packet callback and calls netlib_run(), or
 *   - loops itself: netlib_rx_burst() → work on pkts[i].data → set verdicts →
 *     netlib_tx_burst(), calling netlib_idle() when rx returned 0.
 *
 * Every packet received MUST be returned with netlib_tx_burst() (with DROP if need be); a
 * packet not returned is a buffer the core has to reclaim. netlib_detach() returns any that
 * are still held, with DROP.
 *
 * Threads. A handle is used by one thread at a time; a call made while another call on the
 * same handle is running (another thread, or from inside a netlib_run callback) returns
 * NETLIB_EBUSY. netlib_stop() and netlib_stop_requested() may be called from anywhere.
 *
 * Errors. Functions return NETLIB_OK (0) or a count on success, NETLIB_ERR (-1) on failure
 * (message: netlib_last_error()), NETLIB_RESTARTED (-2) when the core restarted: the library
 * re-attached, and every packet the NF held is void — forget those netlib_pkt entries, do not
 * return them (a stale one given to netlib_tx_burst is ignored and counted as bad_token).
 */
#ifndef NETLIB_H
#define NETLIB_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NETLIB_OK 0
#define NETLIB_ERR (-1)
#define NETLIB_RESTARTED (-2)
#define NETLIB_EBUSY (-3)

/* Verdict codes (the netvm-shm descriptor's codes). */
#define NETLIB_VERDICT_NONE 0    /* not set yet; returned as DROP (counted as no_verdict) */
#define NETLIB_VERDICT_NEXT 1    /* continue with the next service of the chain */
#define NETLIB_VERDICT_SERVICE 2 /* hand to service verdict_arg */
#define NETLIB_VERDICT_OUT 3     /* transmit on port verdict_arg */
#define NETLIB_VERDICT_DROP 4    /* drop */

/* An attached NF (opaque). */
typedef struct netlib_nf netlib_nf;

/*
 * One packet received with netlib_rx_burst. The bytes are in place in shared memory.
 *
 * The NF may rewrite bytes in [data, data + len), and may move `data` and change `len` to
 * adjust headroom/tailroom, as long as buf <= data, len >= 1 and data + len <= buf + buf_len;
 * anything else is caught at netlib_tx_burst: the packet keeps its original bounds and is
 * returned with DROP (counted as bad_adjust). Set `verdict`/`verdict_arg` directly or with
 * netlib_set_verdict(). `token` identifies the descriptor; do not change it.
 * An invalid descriptor from the core arrives with data == NULL, len == 0 and verdict DROP.
 */
typedef struct netlib_pkt {
    uint8_t *data;        /* first packet byte */
    uint8_t *buf;         /* start of the packet's buffer */
    uint64_t token;       /* opaque */
    uint32_t len;         /* packet length */
    uint32_t buf_len;     /* buffer size */
    uint32_t flow_hash;   /* flow hash from the core (0: none) */
    uint16_t in_port;     /* port the packet arrived on */
    uint16_t verdict;     /* NETLIB_VERDICT_*; NONE on receipt */
    uint16_t verdict_arg; /* service id (SERVICE) or port (OUT) */
    uint16_t reserved;
} netlib_pkt;

/* Counters of one NF. */
typedef struct netlib_stats {
    uint64_t rx_pkts, rx_bytes;   /* received */
    uint64_t tx_pkts, tx_bytes;   /* returned */
    uint64_t next, service, out;  /* returned with each verdict */
    uint64_t dropped;             /* returned with DROP, all causes */
    uint64_t no_verdict;          /* returned without a valid verdict (made DROP) */
    uint64_t bad_desc;            /* invalid descriptors from the core (made DROP) */
    uint64_t bad_adjust;          /* data/len moved outside the buffer (made DROP) */
    uint64_t bad_token;           /* stale/unknown/duplicate tokens given to tx (ignored) */
    uint64_t tx_ring_full;        /* bursts that waited for TX ring room */
    uint64_t sleeps;              /* sleeps on the RX doorbells */
    uint64_t reattaches;          /* re-attaches after core restarts */
    uint64_t discarded;           /* packets held at a core restart (void) */
    uint64_t held;                /* packets held now */
} netlib_stats;

/*
 * Per-packet callback of netlib_run. `data`/`len`: the packet, in place, writable (length is
 * fixed in this API). Return a NETLIB_VERDICT_* code; for SERVICE and OUT also store the
 * argument in *verdict_arg (initialised to 0). An unknown code means DROP (counted as
 * no_verdict). The callback must not unwind (C++ exceptions) or longjmp out of netlib_run.
 */
typedef int (*netlib_pkt_cb)(void *ctx, uint8_t *data, uint32_t len, uint16_t in_port,
                             uint16_t *verdict_arg);

/*
 * Attaches to the region file `region_path` as NF `nf_name` (a slot the core reserved under
 * that name, RESERVED or DETACHED, or left ATTACHED by a dead process). NULL arguments are
 * taken from the environment: NETVM_REGION, NETVM_NF. NETVM_GUEST=1 runs as a QEMU guest NF
 * (poll-sleep when idle, pid 0 in the slot); NETVM_WAIT=poll|futex picks the idle sleep
 * explicitly. Returns NULL on failure (see netlib_last_error()).
 */
netlib_nf *netlib_attach(const char *region_path, const char *nf_name);

/* The last error of this thread, as one line; valid until the next netlib call here. */
const char *netlib_last_error(void);

/* Makes SIGINT and SIGTERM stop every netlib loop of the process (netlib_run returns;
 * netlib_stop_requested() becomes 1). */
int netlib_install_signal_handlers(void);

/*
 * Receives up to `max` packets into pkts[0..max). Never blocks. Returns the count (0: none;
 * call netlib_idle()), NETLIB_RESTARTED or NETLIB_ERR.
 */
int netlib_rx_burst(netlib_nf *nf, netlib_pkt *pkts, uint32_t max);

/* Sets a verdict; NETLIB_ERR (nothing changed) for an unknown code. */
int netlib_set_verdict(netlib_pkt *pkt, uint16_t verdict, uint16_t verdict_arg);

/*
 * Returns pkts[0..n) to the core with their verdicts, blocking while the TX ring is full (a
 * packet is never dropped locally). Returns NETLIB_OK, NETLIB_RESTARTED or NETLIB_ERR.
 */
int netlib_tx_burst(netlib_nf *nf, const netlib_pkt *pkts, uint32_t n);

/*
 * One step of adaptive polling after an empty netlib_rx_burst: spins, then yields, then sleeps
 * on the RX doorbells for at most 10 ms (the core wakes the NF when it enqueues). Returns
 * NETLIB_OK, NETLIB_RESTARTED or NETLIB_ERR.
 */
int netlib_idle(netlib_nf *nf);

/*
 * Calls `cb` for every packet, in batches of 32, until netlib_stop() or a signal (after
 * netlib_install_signal_handlers()); then returns NETLIB_OK, every packet returned. Core
 * restarts are handled inside. NETLIB_ERR on failure. Return held packets before calling it.
 */
int netlib_run(netlib_nf *nf, netlib_pkt_cb cb, void *ctx);

/* Asks netlib_run to return after the current batch. Thread- and callback-safe. */
void netlib_stop(netlib_nf *nf);

/* 1 if netlib_stop() was called on `nf` (may be NULL) or a stop signal arrived, else 0. */
int netlib_stop_requested(const netlib_nf *nf);

/* Copies the NF's counters into *out. */
int netlib_get_stats(netlib_nf *nf, netlib_stats *out);

/*
 * Returns every packet still held (DROP), marks the slot DETACHED (the NF may attach again)
 * and frees the handle. NULL is a no-op. NETLIB_EBUSY if a call on the handle is running (the
 * handle is then still valid).
 */
int netlib_detach(netlib_nf *nf);

#ifdef __cplusplus
}
#endif

#endif /* NETLIB_H */
