/*
 * nf_mark — an example C network function on netlib.
 *
 * Swaps the Ethernet source and destination MAC of every packet in place, counts packets,
 * and returns them with verdict NEXT.
 *
 *   nf_mark [-r REGION] [-n NAME] [-c COUNT]
 *
 * REGION and NAME default to $NETVM_REGION and $NETVM_NF. With -c it stops after COUNT
 * packets; otherwise it runs until SIGINT/SIGTERM. Either way it detaches cleanly, prints a
 * summary and exits 0.
 *
 * Build (from the repository root, after `cargo build -p netlib-guest`):
 *   cc -O2 -Wall -I netlib-guest/include netlib-guest/examples/c/nf_mark.c \
 *      target/debug/libnetlib_guest.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o nf_mark
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netlib.h"

struct mark_ctx {
    netlib_nf *nf;
    unsigned long long packets;
    unsigned long long limit; /* 0: no limit */
};

static int on_packet(void *ctx_, uint8_t *data, uint32_t len, uint16_t in_port,
                     uint16_t *verdict_arg) {
    struct mark_ctx *ctx = ctx_;
    uint8_t tmp[6];
    (void)in_port;
    (void)verdict_arg;
    if (len < 14)
        return NETLIB_VERDICT_DROP;
    memcpy(tmp, data, 6);
    memmove(data, data + 6, 6);
    memcpy(data + 6, tmp, 6);
    ctx->packets++;
    if (ctx->limit != 0 && ctx->packets >= ctx->limit)
        netlib_stop(ctx->nf);
    return NETLIB_VERDICT_NEXT;
}

int main(int argc, char **argv) {
    const char *region = NULL, *name = NULL;
    struct mark_ctx ctx = {0};
    netlib_stats st;
    int opt;

    while ((opt = getopt(argc, argv, "r:n:c:h")) != -1) {
        switch (opt) {
        case 'r': region = optarg; break;
        case 'n': name = optarg; break;
        case 'c': ctx.limit = strtoull(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: %s [-r REGION] [-n NAME] [-c COUNT]\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (netlib_install_signal_handlers() != NETLIB_OK) {
        fprintf(stderr, "nf_mark: error: %s\n", netlib_last_error());
        return 1;
    }
    ctx.nf = netlib_attach(region, name);
    if (ctx.nf == NULL) {
        fprintf(stderr, "nf_mark: error: %s\n", netlib_last_error());
        return 1;
    }
    if (netlib_run(ctx.nf, on_packet, &ctx) != NETLIB_OK) {
        fprintf(stderr, "nf_mark: error: %s\n", netlib_last_error());
        netlib_detach(ctx.nf);
        return 1;
    }
    if (netlib_get_stats(ctx.nf, &st) != NETLIB_OK) {
        fprintf(stderr, "nf_mark: error: %s\n", netlib_last_error());
        netlib_detach(ctx.nf);
        return 1;
    }
    if (netlib_detach(ctx.nf) != NETLIB_OK) {
        fprintf(stderr, "nf_mark: error: %s\n", netlib_last_error());
        return 1;
    }
    printf("nf_mark: %llu packets marked; rx %llu tx %llu dropped %llu sleeps %llu\n",
           ctx.packets, (unsigned long long)st.rx_pkts, (unsigned long long)st.tx_pkts,
           (unsigned long long)st.dropped, (unsigned long long)st.sleeps);
    return 0;
}
