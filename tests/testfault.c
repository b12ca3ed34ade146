/*
 * testfault.c - the one definition of the library's test-only fault hook (fy_test_fault,
 * src/pattern/pattern.h) for the tests that drive out-of-memory paths, and its controls
 * (tu_fault_*, testutil.h). It is an object of its own in the testutil library, so only a
 * program that calls tu_fault_* links it: every other test runs with the hook undefined, as
 * programs using libferry.so do. The library may call the hook on the control thread too, hence
 * atomics; each call consumes at most one "let through" or one "fail".
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>

int fy_test_fault(int site);

static _Atomic int tf_site;  /* the armed site, 0: none */
static _Atomic int tf_skip;  /* calls at the site still to let through before failing */
static _Atomic int tf_fail;  /* calls at the site still to fail */
static _Atomic int tf_hits;  /* calls failed since the last arm */
static _Atomic bool tf_here; /* only calls on tf_thread count */
static pthread_t tf_thread;

/* Takes one unit of *v if it has one. */
static bool tf_take(_Atomic int *v)
{
    int x = atomic_load(v);
    while (x > 0)
        if (atomic_compare_exchange_weak(v, &x, x - 1))
            return true;
    return false;
}

int fy_test_fault(int site)
{
    if (site != atomic_load(&tf_site) || atomic_load(&tf_fail) == 0)
        return 0;
    if (atomic_load(&tf_here) && !pthread_equal(pthread_self(), tf_thread))
        return 0;
    if (tf_take(&tf_skip) || !tf_take(&tf_fail))
        return 0;
    atomic_fetch_add(&tf_hits, 1);
    return 1;
}

static void tf_arm(int site, int skip, int fail, bool here)
{
    atomic_store(&tf_site, 0);
    atomic_store(&tf_hits, 0);
    atomic_store(&tf_skip, skip);
    atomic_store(&tf_fail, fail);
    tf_thread = pthread_self();
    atomic_store(&tf_here, here);
    atomic_store(&tf_site, site); /* last: the hook sees the counts set */
}

void tu_fault_arm(int site, int skip, int fail)
{
    tf_arm(site, skip, fail, false);
}

void tu_fault_arm_here(int site, int skip, int fail)
{
    tf_arm(site, skip, fail, true);
}

void tu_fault_set_skip(int skip)
{
    atomic_store(&tf_skip, skip);
}

void tu_fault_off(void)
{
    atomic_store(&tf_site, 0);
    atomic_store(&tf_fail, 0);
    atomic_store(&tf_skip, 0);
}

int tu_fault_hits(void)
{
    return atomic_load(&tf_hits);
}

int tu_fault_left(void)
{
    return atomic_load(&tf_fail);
}
