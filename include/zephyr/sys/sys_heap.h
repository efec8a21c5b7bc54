/* Compatibility: Zephyr's <zephyr/sys/sys_heap.h>, served by kheap. */
#ifndef KHEAP_ZEPHYR_SYS_SYS_HEAP_H
#define KHEAP_ZEPHYR_SYS_SYS_HEAP_H

#include <zephyr/sys/mem_stats.h>
#include <kheap/sys_heap.h>

#endif
