/* Headers bindgen reads. Keep in step with the allowlists in build.rs. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_bus.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_memory.h>
#include <rte_malloc.h>
#include <rte_version.h>
#include <rte_vhost.h>
#include "shim.h"
