/*
 * Compatibility: the heap-related part of Zephyr's <zephyr/kernel.h>.
 * Code written against Zephyr's k_heap, k_malloc and k_timeout_t APIs
 * compiles unchanged against this header.
 */
#ifndef KHEAP_ZEPHYR_KERNEL_H
#define KHEAP_ZEPHYR_KERNEL_H

#include <zephyr/sys/sys_heap.h>
#include <kheap/k_heap.h>

#endif
