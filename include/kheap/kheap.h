/* kheap's whole public API in one include. */
#ifndef KHEAP_KHEAP_H
#define KHEAP_KHEAP_H

#include <kheap/fault.h>
#include <kheap/k_heap.h>
#include <kheap/sys_heap.h>
#include <kheap/timeout.h>

#endif
