/*
 * FIFO wait queue and the futex calls under it. See smp/waitq.h for the
 * hand-off protocol and the barrier pairing it relies on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "smp/atomic.h"

#include "smp/waitq.h"

void kheap_waitq_append(struct kheap_waitq *q, uintptr_t base, struct kheap_waiter *w)
{
	kheap_waiter_ref ref = kheap_waiter_ref_of(base, w);

	w->next = 0;
	w->prev = q->tail;
	if (q->tail != 0)
		kheap_waiter_at(base, q->tail)->next = ref;
	else
		q->head = ref;
	q->tail = ref;
}

void kheap_waitq_remove(struct kheap_waitq *q, uintptr_t base, struct kheap_waiter *w)
{
	if (w->prev != 0)
		kheap_waiter_at(base, w->prev)->next = w->next;
	else
		q->head = w->next;
	if (w->next != 0)
		kheap_waiter_at(base, w->next)->prev = w->prev;
	else
		q->tail = w->prev;
	w->next = 0;
	w->prev = 0;
}

void kheap_waiter_serve(struct kheap_waitq *q, uintptr_t base, struct kheap_waiter *w,
			uint32_t result)
{
	kheap_waitq_remove(q, base, w);
	w->result = result;
	/* Release: pairs with the acquire load in kheap_waiter_sleep. */
	kheap_store_release_32(&w->state, KHEAP_WAITER_SERVED);
}

static bool observed_served(struct kheap_waiter *w)
{
	/* Acquire: pairs with the release in kheap_waiter_serve. */
	return kheap_load_acquire_32(&w->state) == KHEAP_WAITER_SERVED;
}

static bool deadline_passed(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static int futex_op(int op, bool process_shared)
{
	return process_shared ? op : op | FUTEX_PRIVATE_FLAG;
}

bool kheap_waiter_sleep(struct kheap_waiter *w, const struct timespec *deadline,
			bool process_shared)
{
	for (;;) {
		int cancel_type, error;
		long rc;

		if (observed_served(w))
			return true;
		if (deadline != NULL && deadline_passed(deadline))
			return false;
		/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline,
		 * so retries after EINTR or a stray wake keep the same one.
		 */
		/* Cancellation may strike only inside the system call, as in
		 * pthread_cond_wait; the caller's cleanup handler dequeues.
		 */
		pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &cancel_type);
		rc = syscall(SYS_futex, &w->state, futex_op(FUTEX_WAIT_BITSET, process_shared),
			     KHEAP_WAITER_WAITING, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
		error = errno;
		pthread_setcanceltype(cancel_type, NULL);
		if (rc == -1 && error == ETIMEDOUT)
			return observed_served(w);
	}
}

void kheap_waiter_wake(uint32_t *state, bool process_shared)
{
	syscall(SYS_futex, state, futex_op(FUTEX_WAKE, process_shared), 1, NULL, NULL, 0);
}

void kheap_deadline_after(struct timespec *deadline, int64_t ns)
{
	struct timespec now;
	int64_t seconds = ns / 1000000000;
	long nanos = (long)(ns % 1000000000);

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (seconds > (int64_t)INT_MAX) {
		deadline->tv_sec = (time_t)LONG_MAX;
		deadline->tv_nsec = 0;
		return;
	}
	deadline->tv_sec = now.tv_sec + (time_t)seconds;
	deadline->tv_nsec = now.tv_nsec + nanos;
	if (deadline->tv_nsec >= 1000000000) {
		deadline->tv_sec++;
		deadline->tv_nsec -= 1000000000;
	}
}
