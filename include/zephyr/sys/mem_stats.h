/* Compatibility: Zephyr's <zephyr/sys/mem_stats.h>; the struct is in kheap. */
#ifndef KHEAP_ZEPHYR_SYS_MEM_STATS_H
#define KHEAP_ZEPHYR_SYS_MEM_STATS_H

#include <kheap/sys_heap.h>

#endif
