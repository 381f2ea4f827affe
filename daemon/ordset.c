/*
 * ordset.c - pointers kept in the order of a string key, in chunks.
 *
 * The view keeps every account in username order for user.list.  One
 * sorted array made each create move half of it (about 0.6 MB at 150,000
 * accounts), a cost that grows with the directory.  Here the order is cut
 * into chunks of at most ORDSET_CHUNK pointers, found by a binary search
 * over the chunks' last keys: an insert or a remove moves at most one
 * chunk's pointers (4 KiB) and, when a chunk splits or merges, the array
 * of chunk pointers (one per few hundred entries).
 *
 * Invariants, relied on below:
 *   - no chunk is empty; every chunk holds at most ORDSET_CHUNK items;
 *   - keys never decrease from one item to the next, across chunks too;
 *   - two neighbouring chunks hold more than ORDSET_CHUNK / 2 items
 *     together (else they are merged), so chunks are a quarter full on
 *     average at worst.
 */
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

struct ordset_chunk {
	size_t		 n;
	void		*v[ORDSET_CHUNK];
};

static const char *
okey(const struct ordset *s, const struct ordset_chunk *c, size_t i)
{
	return s->key(c->v[i]);
}

/*
 * The first position whose key is >= key (after=false) or > key
 * (after=true); {s->nc, 0} if there is none.  Within a chunk found,
 * i < n always.
 */
struct ordset_pos
ordset_bound(const struct ordset *s, const char *key, bool after)
{
	struct ordset_pos	 p = { s->nc, 0 };
	size_t			 lo = 0, hi = s->nc;

	/* The first chunk whose last key is past the bound. */
	while (lo < hi) {
		size_t	 mid = lo + (hi - lo) / 2;
		int	 c = strcmp(okey(s, s->c[mid], s->c[mid]->n - 1), key);

		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == s->nc)
		return p;
	p.c = lo;
	hi = s->c[lo]->n;
	lo = 0;
	while (lo < hi) {
		size_t	 mid = lo + (hi - lo) / 2;
		int	 c = strcmp(okey(s, s->c[p.c], mid), key);

		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	p.i = lo;
	return p;
}

/* The item at *p, and *p moved to the next; NULL at the end. */
void *
ordset_next(const struct ordset *s, struct ordset_pos *p)
{
	void	*v;

	if (p->c >= s->nc)
		return NULL;
	v = s->c[p->c]->v[p->i];
	if (++p->i == s->c[p->c]->n) {
		p->c++;
		p->i = 0;
	}
	return v;
}

/* Make room for one more chunk pointer at index at; -1 if out of
 * memory. */
static int
ordset_open_slot(struct ordset *s, size_t at)
{
	if (s->nc == s->capc) {
		size_t			  ncap = s->capc ? s->capc * 2 : 16;
		struct ordset_chunk	**n = realloc(s->c, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		s->c = n;
		s->capc = ncap;
	}
	memmove(&s->c[at + 1], &s->c[at], (s->nc - at) * sizeof(*s->c));
	s->nc++;
	return 0;
}

static void
ordset_close_slot(struct ordset *s, size_t at)
{
	memmove(&s->c[at], &s->c[at + 1], (s->nc - at - 1) * sizeof(*s->c));
	s->nc--;
}

int
ordset_insert(struct ordset *s, void *v)
{
	struct ordset_pos	 p;
	struct ordset_chunk	*c;

	if (s->nc == 0) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return -1;
		if (ordset_open_slot(s, 0) != 0) {
			free(c);
			return -1;
		}
		s->c[0] = c;
		c->v[c->n++] = v;
		s->n++;
		return 0;
	}
	/* After any equal keys: an equal key goes last among them. */
	p = ordset_bound(s, s->key(v), true);
	if (p.c == s->nc) {
		p.c = s->nc - 1;
		p.i = s->c[p.c]->n;
	}
	c = s->c[p.c];
	if (c->n == ORDSET_CHUNK) {
		/* Split in halves; the new one goes after c. */
		struct ordset_chunk	*h = calloc(1, sizeof(*h));
		size_t			 half = ORDSET_CHUNK / 2;

		if (h == NULL || ordset_open_slot(s, p.c + 1) != 0) {
			free(h);
			return -1;
		}
		h->n = c->n - half;
		memcpy(h->v, &c->v[half], h->n * sizeof(*h->v));
		c->n = half;
		s->c[p.c + 1] = h;
		if (p.i > half) {
			p.c++;
			p.i -= half;
			c = h;
		}
	}
	memmove(&c->v[p.i + 1], &c->v[p.i], (c->n - p.i) * sizeof(*c->v));
	c->v[p.i] = v;
	c->n++;
	s->n++;
	return 0;
}

/* Where v itself is, or {s->nc, 0}. */
static struct ordset_pos
ordset_find(const struct ordset *s, const void *v)
{
	const char		*k = s->key(v);
	struct ordset_pos	 p = ordset_bound(s, k, false), q;
	void			*x;

	for (q = p; (x = ordset_next(s, &q)) != NULL; p = q) {
		if (x == v)
			return p;
		if (strcmp(s->key(x), k) != 0)
			break;
	}
	p.c = s->nc;
	p.i = 0;
	return p;
}

bool
ordset_replace(struct ordset *s, const void *old, void *v)
{
	struct ordset_pos	 p = ordset_find(s, old);

	if (p.c == s->nc)
		return false;
	s->c[p.c]->v[p.i] = v;
	return true;
}

/* Merge chunk at+1 into chunk at if both fit in half a chunk. */
static void
ordset_merge(struct ordset *s, size_t at)
{
	struct ordset_chunk	*a, *b;

	if (at + 1 >= s->nc)
		return;
	a = s->c[at];
	b = s->c[at + 1];
	if (a->n + b->n > ORDSET_CHUNK / 2)
		return;
	memcpy(&a->v[a->n], b->v, b->n * sizeof(*b->v));
	a->n += b->n;
	free(b);
	ordset_close_slot(s, at + 1);
}

bool
ordset_remove(struct ordset *s, const void *v)
{
	struct ordset_pos	 p = ordset_find(s, v);
	struct ordset_chunk	*c;

	if (p.c == s->nc)
		return false;
	c = s->c[p.c];
	memmove(&c->v[p.i], &c->v[p.i + 1], (c->n - p.i - 1) * sizeof(*c->v));
	c->n--;
	s->n--;
	if (c->n == 0) {
		free(c);
		ordset_close_slot(s, p.c);
		if (p.c > 0)
			ordset_merge(s, p.c - 1);
		return true;
	}
	/* Keep the neighbour invariant: with the next, then the previous
	 * (which may now fit with the merged one). */
	ordset_merge(s, p.c);
	if (p.c > 0)
		ordset_merge(s, p.c - 1);
	return true;
}

void
ordset_clear(struct ordset *s)
{
	for (size_t i = 0; i < s->nc; i++)
		free(s->c[i]);
	free(s->c);
	s->c = NULL;
	s->nc = s->capc = s->n = 0;
}
