/*
 * test_ordset.c - unit tests of ordset.c: random inserts, removes and
 * replaces checked after every step against a plain sorted array (order,
 * count, bounds and the chunk invariants), splits and merges at chunk
 * edges, equal keys, and walking from a bound to the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "otasdird.h"

struct daemon	 D;	/* unit tests link every daemon file but main's */

struct item {
	char	 k[16];
};

/* The chunk layout is private to ordset.c; the test only needs n. */
struct ordset_chunk {
	size_t	 n;
};

static const char *
item_key(const void *p)
{
	return ((const struct item *)p)->k;
}

/* Insert it into the sorted ref[0..n), after equal keys. */
static void
ref_insert(struct item **ref, size_t n, struct item *it)
{
	size_t	 k = n;

	while (k > 0 && strcmp(ref[k - 1]->k, it->k) > 0) {
		ref[k] = ref[k - 1];
		k--;
	}
	ref[k] = it;
}

/* The set holds exactly ref[0..n) in key order, and its chunks keep the
 * invariants of ordset.c. */
static void
check_same(const struct ordset *s, struct item **ref, size_t n)
{
	struct ordset_pos	 p = { 0, 0 };
	size_t			 i = 0, total = 0;
	struct item		*x, *prev = NULL;

	assert_int_equal(s->n, n);
	for (size_t c = 0; c < s->nc; c++) {
		assert_true(s->c[c]->n > 0);
		assert_true(s->c[c]->n <= ORDSET_CHUNK);
		if (c + 1 < s->nc)
			assert_true(s->c[c]->n + s->c[c + 1]->n >
			    ORDSET_CHUNK / 2);
		total += s->c[c]->n;
	}
	assert_int_equal(total, n);
	while ((x = ordset_next(s, &p)) != NULL) {
		assert_true(i < n);
		assert_string_equal(x->k, ref[i]->k);
		if (prev != NULL)
			assert_true(strcmp(prev->k, x->k) <= 0);
		prev = x;
		i++;
	}
	assert_int_equal(i, n);
}

static void
mkkey(struct item *it, unsigned v)
{
	snprintf(it->k, sizeof(it->k), "u%07u", v);
}

static void
test_random(void **state)
{
	enum { N = 20000, STEPS = 60000 };
	struct ordset	 s = { .key = item_key };
	struct item	*pool = calloc(N, sizeof(*pool));
	struct item	**ref = calloc(N, sizeof(*ref));
	bool		*in = calloc(N, sizeof(*in));
	size_t		 n = 0;
	unsigned	 seed = 12345;

	(void)state;
	assert_non_null(pool);
	for (unsigned i = 0; i < N; i++)
		mkkey(&pool[i], i * 7919u % N);
	for (unsigned step = 0; step < STEPS; step++) {
		unsigned	 j;

		seed = seed * 1103515245u + 12345u;
		j = (seed >> 8) % N;
		/* Grow for the first half, then shrink. */
		if (!in[j] && (step < STEPS / 2 || (seed >> 4) % 4 == 0)) {
			assert_int_equal(ordset_insert(&s, &pool[j]), 0);
			in[j] = true;
			ref_insert(ref, n++, &pool[j]);
		} else if (in[j]) {
			size_t	 k;

			assert_true(ordset_remove(&s, &pool[j]));
			in[j] = false;
			for (k = 0; ref[k] != &pool[j]; k++)
				;
			memmove(&ref[k], &ref[k + 1],
			    (n - k - 1) * sizeof(*ref));
			n--;
			assert_false(ordset_remove(&s, &pool[j]));
		}
		if (step % 997 == 0 || step == STEPS - 1)
			check_same(&s, ref, n);
	}
	/* Bounds: for keys present and absent, the next item is the first
	 * reference item >= (or >) the key. */
	for (unsigned v = 0; v < N; v += 37) {
		struct item	 probe;
		struct ordset_pos p;
		struct item	*x;
		size_t		 k;

		mkkey(&probe, v);
		for (int after = 0; after <= 1; after++) {
			p = ordset_bound(&s, probe.k, after);
			x = ordset_next(&s, &p);
			for (k = 0; k < n; k++) {
				int c = strcmp(ref[k]->k, probe.k);

				if (c > 0 || (!after && c == 0))
					break;
			}
			if (k == n)
				assert_null(x);
			else
				assert_ptr_equal(x, ref[k]);
		}
	}
	/* Remove everything: the set is empty and holds no chunk. */
	for (size_t k = 0; k < n; k++)
		assert_true(ordset_remove(&s, ref[k]));
	assert_int_equal(s.n, 0);
	assert_int_equal(s.nc, 0);
	ordset_clear(&s);
	free(pool);
	free(ref);
	free(in);
}

/* Ascending and descending runs split at both chunk ends; removing every
 * other item then merges chunks back. */
static void
test_edges(void **state)
{
	enum { N = ORDSET_CHUNK * 5 + 3 };
	struct ordset	 s = { .key = item_key };
	struct item	*pool = calloc(N, sizeof(*pool));
	struct item	**ref = calloc(N, sizeof(*ref));
	size_t		 n = 0;

	(void)state;
	for (unsigned i = 0; i < N; i++) {
		mkkey(&pool[i], i);
		ref[i] = &pool[i];
	}
	for (unsigned i = 0; i < N; i++)		/* ascending */
		assert_int_equal(ordset_insert(&s, &pool[i]), 0);
	check_same(&s, ref, N);
	ordset_clear(&s);
	for (unsigned i = N; i-- > 0;)			/* descending */
		assert_int_equal(ordset_insert(&s, &pool[i]), 0);
	check_same(&s, ref, N);
	for (unsigned i = 0; i < N; i += 2)
		assert_true(ordset_remove(&s, &pool[i]));
	for (unsigned i = 1; i < N; i += 2)
		ref[n++] = &pool[i];
	check_same(&s, ref, n);
	assert_true(s.nc <= (n + ORDSET_CHUNK / 2 - 1) / (ORDSET_CHUNK / 4));
	ordset_clear(&s);
	assert_int_equal(s.nc, 0);
	free(pool);
	free(ref);
}

/* Equal keys: kept in insertion order, each found as itself; replace
 * swaps one in place. */
static void
test_equal_keys(void **state)
{
	enum { N = ORDSET_CHUNK + 10 };
	struct ordset	 s = { .key = item_key };
	struct item	*pool = calloc(N + 1, sizeof(*pool));
	struct ordset_pos p = { 0, 0 };
	struct item	*x;
	unsigned	 i = 0;

	(void)state;
	for (unsigned k = 0; k <= N; k++)
		strcpy(pool[k].k, "same");
	for (unsigned k = 0; k < N; k++)
		assert_int_equal(ordset_insert(&s, &pool[k]), 0);
	while ((x = ordset_next(&s, &p)) != NULL)
		assert_ptr_equal(x, &pool[i++]);
	assert_int_equal(i, N);
	assert_true(ordset_replace(&s, &pool[N - 1], &pool[N]));
	assert_false(ordset_replace(&s, &pool[N - 1], &pool[N]));
	assert_true(ordset_remove(&s, &pool[N]));
	assert_true(ordset_remove(&s, &pool[0]));
	assert_int_equal(s.n, N - 2);
	p = ordset_bound(&s, "same", true);
	assert_null(ordset_next(&s, &p));
	p = ordset_bound(&s, "same", false);
	assert_ptr_equal(ordset_next(&s, &p), &pool[1]);
	ordset_clear(&s);
	free(pool);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_equal_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
