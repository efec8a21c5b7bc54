/*
 * The k_heap wait-queue protocol as a Promela model, checked with spin by
 * tests/model/run_spin.sh. It owns no code; it must change whenever the
 * protocol in the code below changes. What each part models:
 *
 *   alloc_fast      heap/cpu_cache.c: kheap_cache_alloc (trylock of the
 *                   current CPU's slot lock, pop from its cache) and refill
 *                   (under the heap lock, the depot's whole list if it has
 *                   one, its first block serving the request, else one block
 *                   from the heap; a batch into the cache only while
 *                   waiter_count reads 0, within the CPU budget; a depot
 *                   list taken while anyone waits goes straight back)
 *   adopt_chain     heap/cpu_cache.c: adopt_chain (after the heap lock is
 *                   dropped, under the slot lock: park what the cache has
 *                   room for; the rest back to the depot if its list is
 *                   still empty and nobody waits, else to the heap, serving
 *                   waiters)
 *   alloc_slow      heap/k_heap.c: alloc_global (one try under the heap
 *                   lock; waiter_count increment; drain; a last try and the
 *                   FIFO enqueue in the same heap-lock hold; sleep; on a
 *                   deadline, dequeue and one last try under the lock, unless
 *                   the server got there first; waiter_count decrement)
 *   drain_caches    heap/cpu_cache.c: kheap_cache_drain_all (each slot lock
 *                   with a blocking acquire, then the heap lock, release the
 *                   cache, serve waiters, wake after unlocking; then the
 *                   depot, under the heap lock alone)
 *   free_block      heap/cpu_cache.c: kheap_cache_free (trylock the slot
 *                   lock, read waiter_count under it, flush half the class if
 *                   over budget, into the depot while waiter_count reads 0
 *                   under the heap lock and the depot has room, else to the
 *                   heap; park the block) and heap/k_heap.c:
 *                   free_global (free under the heap lock, serve waiters,
 *                   wake after unlocking)
 *   serve_waiters   heap/k_heap.c: kheap_serve_waiters with smp/waitq.c:
 *                   kheap_waiter_serve (scan the queue in FIFO order, give
 *                   each waiter that fits its block, dequeue it, store
 *                   SERVED)
 *   wake_served     heap/k_heap.c: kheap_wake_served, smp/waitq.c:
 *                   kheap_waiter_wake (FUTEX_WAKE after the lock is dropped;
 *                   it may reach a waiter that already returned and is
 *                   asleep on a later request, which only makes it recheck)
 *   wait_until_served
 *                   smp/waitq.c: kheap_waiter_sleep (return once SERVED is
 *                   seen; FUTEX_WAIT sleeps only while the word is WAITING;
 *                   a deadline may pass at any moment, and a timed-out wait
 *                   returns whether SERVED was stored meanwhile; cancellation
 *                   may strike while asynchronous cancellation is enabled
 *                   around the futex call, whether or not it was served)
 *   abandon_wait    heap/k_heap.c: abandon_wait, the cancellation cleanup
 *                   handler (under the heap lock: give back the block if it
 *                   was served, and serve others with it, else dequeue; wake
 *                   after unlocking; waiter_count decrement); the cancelled
 *                   thread then exits
 *
 * Abstractions. Memory is TOTAL units, counted rather than placed (the
 * allocator's fragmentation is not the protocol's business): a request of
 * 1 unit stands for a size the per-CPU caches serve, 2 units for one they do
 * not. Spinlocks are blocking test-and-set steps. Each thread picks its CPU
 * afresh for every fast path (threads migrate). waiter_count updates, slot
 * lock acquires and releases, futex waits and wakes are steps of their own.
 * A whole heap-lock hold is one atomic step (a reduction that loses no
 * behaviour): inside it everything is protected by that lock except at most
 * one lock-free read of waiter_count, and SERVED stores that only the served
 * waiter reads. Memory is sequentially consistent here; the code gets the
 * orderings the argument needs from its locks and from the SERVED
 * release/acquire pair. k_heap_realloc serves after a shrink as free_global
 * does, and K_NO_WAIT gives up where a deadline would enqueue, so neither is
 * modelled separately. Scarcity (low_memory and the drain at the start of a
 * scarce spell) is not modelled either: it only parks less and releases more.
 * The depot holds at most DEPOT_BUDGET units, so a refill can take a list of
 * two and have one to adopt.
 *
 * Threads 0 and 1 wait with K_FOREVER; thread 2 waits with a deadline and
 * may be cancelled while it sleeps. Each makes ROUNDS requests of 1 or 2
 * units and frees what it gets.
 *
 * Checked (run_spin.sh):
 *   - memory conservation: free + cached + held by threads == TOTAL in every
 *     state (the monitor process);
 *   - no deadlock and no lost wake-up: every run ends with all threads done
 *     (a thread asleep forever, or stuck on a lock, is an invalid end
 *     state), the queue empty and waiter_count 0;
 *   - LTL no_lost_wakeup: a K_FOREVER waiter that is asleep although it was
 *     served, or although enough memory sits free in the heap or the
 *     caches, does not stay so (it is woken, or someone else takes the
 *     memory and it may rightly wait on).
 */

#define NTHREADS 3
#define NSLOTS   2
#define TOTAL    3
#define BUDGET   1
#define DEPOT_BUDGET 2
#define ROUNDS   2
#define NONE     255

#define FOREVER  0
#define DEADLINE 1

byte global_free = TOTAL;
byte cache[NSLOTS];
/* The depot (heap/cpu_cache.c), protected by heap_lock. */
byte depot;
/* Units a refill took from the depot and holds, under its slot lock only,
 * until it parks them (adopt_chain); per thread.
 */
byte limbo[NTHREADS];
byte waiter_count;
bool heap_lock;
bool slot_lock[NSLOTS];
/* FIFO wait queue (smp/waitq.h: kheap_waitq), protected by heap_lock. */
byte queue[NTHREADS] = NONE;
byte queue_len;
/* Per thread: its request, its futex word (false = WAITING, true = SERVED),
 * whether it is blocked in FUTEX_WAIT, and the units it holds.
 */
byte need[NTHREADS];
bool served[NTHREADS];
bool asleep[NTHREADS];
byte held[NTHREADS];
byte finished;

#define cached_total (cache[0] + cache[1] + depot)
#define conserved (global_free + cached_total + held[0] + held[1] + held[2] + \
		   limbo[0] + limbo[1] + limbo[2] == TOTAL)
/* Asleep although it was served, or although enough memory is free. */
#define stranded(p) (asleep[p] && (served[p] || global_free + cached_total >= need[p]))

ltl no_lost_wakeup {
	[] ((stranded(0) -> <> !stranded(0)) && (stranded(1) -> <> !stranded(1)))
}

inline lock(l)
{
	atomic { !l -> l = true }
}

inline unlock(l)
{
	l = false
}

/* The current CPU (any: threads migrate) and a trylock of its slot lock. */
inline trylock_current_slot()
{
	atomic {
		if
		:: slot = 0
		:: slot = 1
		fi;
		if
		:: !slot_lock[slot] -> slot_lock[slot] = true; ok = true
		:: else -> ok = false
		fi
	}
}

/* Heap lock held. Serves every queued waiter that fits, in FIFO order. */
inline serve_waiters()
{
	i = 0;
	do
	:: i < queue_len ->
		w = queue[i];
		if
		:: need[w] <= global_free ->
			global_free = global_free - need[w];
			held[w] = need[w];
			j = i;
			do
			:: j + 1 < queue_len -> queue[j] = queue[j + 1]; j++
			:: else -> break
			od;
			queue_len--;
			queue[queue_len] = NONE;
			served[w] = true;
			wake_mask = wake_mask | (1 << w)
		:: else -> i++
		fi
	:: else -> break
	od;
	i = 0; j = 0; w = 0
}

/* Heap lock dropped. One FUTEX_WAKE per served waiter, each its own step. */
inline wake_served()
{
	do
	:: wake_mask != 0 ->
		atomic {
			w = 0;
			do
			:: (wake_mask >> w) & 1 -> break
			:: else -> w++
			od;
			asleep[w] = false;
			wake_mask = wake_mask & ~(1 << w);
			w = 0
		}
	:: else -> break
	od
}

/* Heap lock held, me not served: leaves the queue. */
inline dequeue_self()
{
	i = 0;
	do
	:: queue[i] == me -> break
	:: else -> i++
	od;
	do
	:: i + 1 < queue_len -> queue[i] = queue[i + 1]; i++
	:: else -> break
	od;
	queue_len--;
	queue[queue_len] = NONE;
	i = 0
}

/* Heap lock held: allocates the request from the global heap if it fits. */
inline take_global()
{
	if
	:: global_free >= need[me] ->
		global_free = global_free - need[me];
		held[me] = need[me]
	:: else -> skip
	fi
}

inline alloc_fast()
{
	if
	:: need[me] == 1 ->
		trylock_current_slot();
		if
		:: ok ->
			atomic {
				if
				:: cache[slot] > 0 -> cache[slot]--; held[me] = 1
				:: else ->
					lock(heap_lock);
					/* take_depot_class: the whole list; its first
					 * block serves the request.
					 */
					if
					:: depot > 0 ->
						held[me] = 1;
						limbo[me] = depot - 1;
						depot = 0
					:: else -> take_global()
					fi;
					/* Nothing may be parked while anyone waits: the
					 * rest goes back to the list this hold emptied.
					 */
					if
					:: limbo[me] > 0 && waiter_count != 0 ->
						depot = limbo[me];
						limbo[me] = 0
					:: else -> skip
					fi;
					if
					:: held[me] > 0 && limbo[me] == 0 && waiter_count == 0 &&
					   global_free > 0 && cache[slot] < BUDGET ->
						global_free--; cache[slot]++
					:: else -> skip
					fi;
					unlock(heap_lock)
				fi
			};
			adopt_chain();
			atomic { unlock(slot_lock[slot]); ok = false; slot = 0 }
		:: else -> slot = 0
		fi
	:: else -> skip
	fi
}

/*
 * Slot lock held, heap lock not: parks what this CPU's cache has room for,
 * then gives the rest back to the depot if its list is still empty and
 * nobody waits, else to the heap, serving waiters.
 */
inline adopt_chain()
{
	if
	:: limbo[me] > 0 ->
		atomic {
			i = BUDGET - cache[slot];
			if
			:: i > limbo[me] -> i = limbo[me]
			:: else -> skip
			fi;
			cache[slot] = cache[slot] + i;
			limbo[me] = limbo[me] - i;
			i = 0
		};
		if
		:: limbo[me] > 0 ->
			atomic {
				lock(heap_lock);
				if
				:: waiter_count == 0 && depot == 0 && limbo[me] <= DEPOT_BUDGET ->
					depot = limbo[me]
				:: else ->
					global_free = global_free + limbo[me];
					serve_waiters()
				fi;
				limbo[me] = 0;
				unlock(heap_lock)
			};
			wake_served()
		:: else -> skip
		fi
	:: else -> skip
	fi
}

inline drain_caches()
{
	slot = 0;
	do
	:: slot < NSLOTS ->
		lock(slot_lock[slot]);
		if
		:: cache[slot] > 0 ->
			atomic {
				lock(heap_lock);
				global_free = global_free + cache[slot];
				cache[slot] = 0;
				serve_waiters();
				unlock(heap_lock)
			};
			unlock(slot_lock[slot]);
			wake_served()
		:: else -> unlock(slot_lock[slot])
		fi;
		slot++
	:: else -> break
	od;
	slot = 0;
	/* The depot last, under the heap lock alone. */
	atomic {
		lock(heap_lock);
		if
		:: depot > 0 ->
			global_free = global_free + depot;
			depot = 0;
			serve_waiters()
		:: else -> skip
		fi;
		unlock(heap_lock)
	};
	wake_served()
}

inline wait_until_served()
{
	do
	:: served[me] -> break
	:: !served[me] && mode == DEADLINE -> break
	:: !served[me] ->
		atomic {
			if
			:: !served[me] -> asleep[me] = true
			:: else -> skip
			fi
		};
		if
		:: !asleep[me] -> skip
		:: mode == DEADLINE -> atomic { asleep[me] = false };
			break
		:: mode == DEADLINE -> atomic { asleep[me] = false; cancelled = true };
			break
		fi
	od
}

inline abandon_wait()
{
	atomic {
		lock(heap_lock);
		if
		:: served[me] ->
			global_free = global_free + held[me];
			held[me] = 0;
			serve_waiters()
		:: else -> dequeue_self()
		fi;
		unlock(heap_lock)
	};
	wake_served();
	waiter_count--
}

inline alloc_slow()
{
	atomic { lock(heap_lock); take_global(); unlock(heap_lock) };
	if
	:: held[me] == 0 ->
		waiter_count++;
		drain_caches();
		atomic {
			lock(heap_lock);
			take_global();
			if
			:: held[me] == 0 ->
				queue[queue_len] = me;
				queue_len++;
				served[me] = false
			:: else -> skip
			fi;
			unlock(heap_lock)
		};
		if
		:: held[me] == 0 ->
			wait_until_served();
			if
			:: cancelled -> abandon_wait()
			:: !cancelled && served[me] -> waiter_count--
			:: !cancelled && !served[me] ->
				atomic {
					lock(heap_lock);
					if
					:: served[me] -> skip
					:: else -> dequeue_self(); take_global()
					fi;
					unlock(heap_lock)
				};
				waiter_count--
			fi
		:: else -> waiter_count--
		fi
	:: else -> skip
	fi
}

inline free_block()
{
	if
	:: held[me] == 1 ->
		trylock_current_slot();
		if
		:: ok ->
			atomic {
				if
				:: waiter_count == 0 ->
					if
					:: cache[slot] + 1 > BUDGET ->
						lock(heap_lock);
						i = (cache[slot] + 1) / 2;
						/* depot_may_park, read under the heap lock */
						if
						:: waiter_count == 0 ->
							j = DEPOT_BUDGET - depot;
							if
							:: j > i -> j = i
							:: else -> skip
							fi;
							depot = depot + j;
							cache[slot] = cache[slot] - j;
							i = i - j;
							j = 0
						:: else -> skip
						fi;
						global_free = global_free + i;
						cache[slot] = cache[slot] - i;
						i = 0;
						unlock(heap_lock)
					:: else -> skip
					fi;
					if
					:: cache[slot] + 1 <= BUDGET -> cache[slot]++; held[me] = 0
					:: else -> skip
					fi
				:: else -> skip
				fi
			};
			atomic { unlock(slot_lock[slot]); ok = false; slot = 0 }
		:: else -> slot = 0
		fi
	:: else -> skip
	fi;
	if
	:: held[me] > 0 ->
		atomic {
			lock(heap_lock);
			global_free = global_free + held[me];
			held[me] = 0;
			serve_waiters();
			unlock(heap_lock)
		};
		wake_served()
	:: else -> skip
	fi
}

proctype thread(byte me; bit mode)
{
	byte round, slot, i, j, w, wake_mask;
	bool ok, cancelled;

	do
	:: round < ROUNDS ->
		if
		:: need[me] = 1
		:: need[me] = 2
		fi;
		alloc_fast();
		if
		:: held[me] == 0 -> alloc_slow()
		:: else -> skip
		fi;
		if
		:: cancelled -> break
		:: else -> skip
		fi;
		free_block();
		atomic { need[me] = 0; served[me] = false; ok = false; round++ }
	:: else -> break
	od;
	finished++
}

init
{
	atomic {
		run thread(0, FOREVER);
		run thread(1, FOREVER);
		run thread(2, DEADLINE)
	}
}

/* Memory conservation, checked in every reachable state. */
active proctype monitor()
{
end:
	atomic { !conserved -> assert(conserved) }
}

/* Once every thread is done: nobody queued or counted, every unit back. */
active proctype quiescence()
{
	finished == NTHREADS;
	assert(queue_len == 0 && waiter_count == 0 && global_free + cached_total == TOTAL)
}
