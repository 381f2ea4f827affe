/*
 * view.c - a live, in-memory copy of the entries directly under people_dn.
 *
 * It is loaded and then kept current by an RFC 4533 refreshAndPersist
 * search (syncprov) on a connection of its own: the refresh phase sends
 * every entry, then the persist phase sends each add, modify, rename and
 * delete as it happens.  Where that is impossible (no syncprov on the
 * database, or a size limit on the service DN that cuts the refresh short)
 * the whole OU is re-read (dir_scan) every ldap.reconcile_interval_s
 * instead, and the log says so.
 *
 * Each (re)load stamps the entries it sees with a new generation; when it
 * ends, entries with an older stamp were deleted while we were not
 * looking and are dropped.  Until then the previous content stays
 * readable, so a reconnect never empties the view.
 *
 * Entries are found by their RDN (lower-cased, "uid=alice") and by
 * entryUUID (sync deletes and renames name the UUID).  Accounts -- entries
 * with objectClass otasAccount and a uid RDN -- are also kept in order of
 * lower-cased username (an ordset, whose inserts cost the same at any
 * size), which user.list walks.  Counts (seats,
 * active, inactive, active super admins) are kept as entries change, so
 * license.get costs the same at any size.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "otasdird.h"

/*
 * One entry.  The record and its strings are one allocation (at 100,000
 * accounts, separate strings cost ~100 bytes each in malloc headers and
 * rounding): buf holds the key, then for accounts the username, the full
 * name and the email.  For an account the key is "uid=" and the
 * lower-cased username, so lname points into it.
 */
struct vrec {
	struct account	 a;		/* strings in buf */
	const char	*key;		/* lower-cased first RDN */
	const char	*lname;		/* key + 4 (accounts) */
	struct vrec	*knext;		/* chain by key */
	struct vrec	*unext;		/* chain by uuid */
	unsigned	 gen;
	bool		 has_uuid;
	bool		 is_account;
	unsigned char	 uuid[16];
	char		 buf[];
};

enum view_mode {
	VIEW_SYNC,		/* refreshAndPersist */
	VIEW_POLL,		/* periodic re-reads (dir_scan) */
};

static struct {
	struct ldc	*ldc;
	struct ldc_op	*op;		/* the running sync search */
	struct dir_scan	*scan;		/* or the running re-read */
	enum view_mode	 mode;
	bool		 ready;		/* loaded once */
	bool		 refreshing;	/* a load is under way */
	unsigned	 gen;
	uint64_t	 load_start_ms;
	struct event	*timer;		/* next poll / retry */
	struct event	*probe_timer;	/* liveness of the sync connection */
	struct ldc_op	*probe;		/* the probe in flight */
	uint64_t	 seed;

	struct vrec	**kbuckets;	/* by key */
	struct vrec	**ubuckets;	/* by uuid */
	size_t		 nbuckets;	/* power of two */
	size_t		 nentries;

	struct ordset	 sorted;	/* accounts by lname */

	size_t		 nactive, ninactive, nsuper_active;
} V;

static const char *const view_attrs[] = {
	"objectClass", "uid", "cn", "displayName", "mail",
	"otasAccountStatus", "otasRole", "entryUUID", NULL,
};

static void	view_start(void);

/* ------------------------------------------------------------------ */
/* names */

const char *
acct_status_name(enum acct_status s)
{
	switch (s) {
	case ST_ACTIVE:
		return STATUS_ACTIVE;
	case ST_INACTIVE:
		return STATUS_INACTIVE;
	default:
		return "none";
	}
}

const char *
role_name(enum role r)
{
	switch (r) {
	case ROLE_SUPERADMIN:
		return ROLE_NAME_SUPERADMIN;
	case ROLE_USER:
		return ROLE_NAME_USER;
	default:
		return "none";
	}
}

cJSON *
account_json(const struct account *a)
{
	cJSON	*o;

	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if (cJSON_AddStringToObject(o, "username", a->username) == NULL ||
	    cJSON_AddStringToObject(o, "full_name", a->full_name) == NULL ||
	    cJSON_AddStringToObject(o, "email", a->email) == NULL ||
	    cJSON_AddStringToObject(o, "status",
	    acct_status_name(a->status)) == NULL ||
	    cJSON_AddStringToObject(o, "role", role_name(a->role)) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ------------------------------------------------------------------ */
/* hashing and lookup */

/* FNV-1a with a per-process seed. */
static size_t
view_hash(const void *p, size_t len)
{
	const unsigned char	*s = p;
	uint64_t		 h = 0xcbf29ce484222325ULL ^ V.seed;

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return (size_t)(h ^ (h >> 29));
}

static char *
lower_dup(const char *s)
{
	char	*d = strdup(s);

	if (d != NULL)
		for (char *p = d; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	return d;
}

static struct vrec *
view_find_key(const char *key)
{
	struct vrec	*r;

	if (V.nbuckets == 0)
		return NULL;
	r = V.kbuckets[view_hash(key, strlen(key)) & (V.nbuckets - 1)];
	for (; r != NULL; r = r->knext)
		if (strcmp(r->key, key) == 0)
			return r;
	return NULL;
}

static struct vrec *
view_find_uuid(const unsigned char *uuid)
{
	struct vrec	*r;

	if (V.nbuckets == 0)
		return NULL;
	r = V.ubuckets[view_hash(uuid, 16) & (V.nbuckets - 1)];
	for (; r != NULL; r = r->unext)
		if (r->has_uuid && memcmp(r->uuid, uuid, 16) == 0)
			return r;
	return NULL;
}

static void
view_link(struct vrec *r)
{
	size_t	 k = view_hash(r->key, strlen(r->key)) & (V.nbuckets - 1);

	r->knext = V.kbuckets[k];
	V.kbuckets[k] = r;
	if (r->has_uuid) {
		k = view_hash(r->uuid, 16) & (V.nbuckets - 1);
		r->unext = V.ubuckets[k];
		V.ubuckets[k] = r;
	}
}

static void
view_unlink(struct vrec *r)
{
	struct vrec	**pp;

	pp = &V.kbuckets[view_hash(r->key, strlen(r->key)) &
	    (V.nbuckets - 1)];
	for (; *pp != NULL; pp = &(*pp)->knext)
		if (*pp == r) {
			*pp = r->knext;
			break;
		}
	if (r->has_uuid) {
		pp = &V.ubuckets[view_hash(r->uuid, 16) & (V.nbuckets - 1)];
		for (; *pp != NULL; pp = &(*pp)->unext)
			if (*pp == r) {
				*pp = r->unext;
				break;
			}
	}
}

/* Double the tables when they are full. */
static int
view_grow(void)
{
	struct vrec	**ok = V.kbuckets, **ou = V.ubuckets;
	size_t		  on = V.nbuckets, nn = on ? on * 2 : 1024;

	if (V.nentries < on)
		return 0;
	V.kbuckets = calloc(nn, sizeof(*V.kbuckets));
	V.ubuckets = calloc(nn, sizeof(*V.ubuckets));
	if (V.kbuckets == NULL || V.ubuckets == NULL) {
		free(V.kbuckets);
		free(V.ubuckets);
		V.kbuckets = ok;
		V.ubuckets = ou;
		return -1;
	}
	V.nbuckets = nn;
	for (size_t i = 0; i < on; i++) {
		struct vrec	*r, *next;

		for (r = ok[i]; r != NULL; r = next) {
			next = r->knext;
			view_link(r);
		}
	}
	free(ok);
	free(ou);
	return 0;
}

/* ------------------------------------------------------------------ */
/* accounts in username order */

static const char *
view_lname(const void *p)
{
	return ((const struct vrec *)p)->lname;
}

/* ------------------------------------------------------------------ */
/* records */

static void
view_count(const struct vrec *r, int sign)
{
	if (!r->is_account)
		return;
	if (r->a.status == ST_ACTIVE) {
		V.nactive += (size_t)sign;
		if (r->a.role == ROLE_SUPERADMIN)
			V.nsuper_active += (size_t)sign;
	} else if (r->a.status == ST_INACTIVE)
		V.ninactive += (size_t)sign;
}

static void
view_rec_free(struct vrec *r)
{
	free(r);
}

static void
view_remove(struct vrec *r)
{
	view_count(r, -1);
	if (r->is_account)
		(void)ordset_remove(&V.sorted, r);
	view_unlink(r);
	V.nentries--;
	view_rec_free(r);
}

/*
 * Insert or replace the entry with this key (and uuid, if known) by the
 * fields of n, which this call takes over (n is freed or kept).
 */
static void
view_upsert(struct vrec *n)
{
	struct vrec	*old;

	old = view_find_key(n->key);
	if (old == NULL && n->has_uuid)
		old = view_find_uuid(n->uuid);	/* renamed */
	if (old != NULL) {
		if (!n->has_uuid && old->has_uuid) {
			memcpy(n->uuid, old->uuid, 16);
			n->has_uuid = true;
		}
		/* Same place in the order (an update, or the directory
		 * confirming what view_put already has): swap in place
		 * rather than remove and insert again. */
		if (old->is_account && n->is_account &&
		    strcmp(old->lname, n->lname) == 0 &&
		    ordset_replace(&V.sorted, old, n)) {
			view_count(old, -1);
			view_unlink(old);
			view_rec_free(old);
			view_link(n);
			view_count(n, 1);
			return;
		}
		view_remove(old);
	}
	if (view_grow() != 0 ||
	    (n->is_account && ordset_insert(&V.sorted, n) != 0)) {
		log_warnx("view: out of memory; dropping an entry");
		view_rec_free(n);
		return;
	}
	view_link(n);
	V.nentries++;
	view_count(n, 1);
}

/*
 * A record with key (already lower-cased) and, for an account, a copy of
 * a's fields; NULL if out of memory.
 */
static struct vrec *
view_rec_make(const char *key, const struct account *a)
{
	size_t		 klen = strlen(key) + 1, ulen = 0, flen = 0, elen = 0;
	struct vrec	*r;
	char		*p;

	if (a != NULL) {
		ulen = strlen(a->username) + 1;
		flen = strlen(a->full_name) + 1;
		elen = strlen(a->email) + 1;
	}
	if ((r = calloc(1, sizeof(*r) + klen + ulen + flen + elen)) == NULL)
		return NULL;
	p = r->buf;
	memcpy(p, key, klen);
	r->key = p;
	p += klen;
	if (a != NULL) {
		r->is_account = true;
		r->a.status = a->status;
		r->a.role = a->role;
		r->a.username = memcpy(p, a->username, ulen);
		p += ulen;
		r->a.full_name = memcpy(p, a->full_name, flen);
		p += flen;
		r->a.email = memcpy(p, a->email, elen);
		r->lname = r->key + 4;
	}
	r->gen = V.gen;
	return r;
}

/* A record for an account as given by a writer (view_put). */
static struct vrec *
view_rec_from_account(const struct account *a)
{
	struct account	 c = *a;
	struct vrec	*r;
	char		*key;

	if (c.email == NULL)
		c.email = (char *)(uintptr_t)"";
	if ((key = malloc(strlen(a->username) + 5)) == NULL)
		return NULL;
	strcpy(key, "uid=");
	strcat(key, a->username);
	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	r = view_rec_make(key, &c);
	free(key);
	return r;
}

/*
 * A record from a directory entry, or NULL if it is not directly under
 * people_dn (or out of memory).
 */
static struct vrec *
view_rec_from_entry(LDAP *ld, LDAPMessage *e)
{
	struct vrec	 *r = NULL;
	struct account	  acct;
	struct berval	  dn, attr, *vals = NULL;
	char		 *key = NULL;
	unsigned char	  uuid[16];
	bool		  has_uuid = false;
	LDAPDN		  ldn = NULL;
	BerElement	 *ber = NULL;
	bool		  has_aux = false;
	char		 *uid = NULL, *cn = NULL, *dname = NULL, *mail = NULL;
	char		 *status = NULL, *role = NULL;
	const char	 *people = D.cfg->people_dn;
	size_t		  plen = strlen(people);

	/* The DN and the values are read in place from the message (no
	 * copies of the strings we do not keep): at a refresh of 100,000
	 * entries, and at every create's notification, that is most of
	 * the work. */
	if (ldap_get_dn_ber(ld, e, &ber, &dn) != LDAP_SUCCESS || ber == NULL)
		goto out;
	/* Directly under people_dn: one RDN, then people_dn.  DNs from
	 * slapd are normalised the same way as the base we asked for, up
	 * to case. */
	if (dn.bv_len <= plen + 1 ||
	    strncasecmp(dn.bv_val + dn.bv_len - plen, people, plen) != 0 ||
	    dn.bv_val[dn.bv_len - plen - 1] != ',')
		goto out;
	if (ldap_bv2dn(&dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
	    ldn == NULL || ldn[0] == NULL || ldn[0][0] == NULL)
		goto out;
	{
		LDAPAVA	*ava = ldn[0][0];
		size_t	 klen = ava->la_attr.bv_len + ava->la_value.bv_len + 2;

		if ((key = malloc(klen)) == NULL)
			goto out;
		snprintf(key, klen, "%.*s=%.*s", (int)ava->la_attr.bv_len,
		    ava->la_attr.bv_val, (int)ava->la_value.bv_len,
		    ava->la_value.bv_val);
		for (char *p = key; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}

	while (ldap_get_attribute_ber(ld, e, ber, &attr, &vals) ==
	    LDAP_SUCCESS && attr.bv_val != NULL) {
		char		**slot = NULL;

		if (vals != NULL && vals[0].bv_val != NULL) {
			if (strcasecmp(attr.bv_val, "objectClass") == 0) {
				for (size_t i = 0; vals[i].bv_val != NULL; i++)
					if (vals[i].bv_len == 11 &&
					    strncasecmp(vals[i].bv_val,
					    "otasAccount", 11) == 0)
						has_aux = true;
			} else if (strcasecmp(attr.bv_val, "entryUUID") == 0) {
				/* textual UUID: keep the 16 bytes */
				const char	*s = vals[0].bv_val;
				size_t		 n = 0;

				for (size_t i = 0; i < vals[0].bv_len &&
				    n < 32; i++) {
					int	 c = s[i], v;

					if (c == '-')
						continue;
					if (!isxdigit(c))
						break;
					v = isdigit(c) ? c - '0' :
					    tolower(c) - 'a' + 10;
					if (n % 2 == 0)
						uuid[n / 2] =
						    (unsigned char)(v << 4);
					else
						uuid[n / 2] |=
						    (unsigned char)v;
					n++;
				}
				has_uuid = n == 32;
			} else if (strcasecmp(attr.bv_val, "uid") == 0)
				slot = &uid;
			else if (strcasecmp(attr.bv_val, "cn") == 0)
				slot = &cn;
			else if (strcasecmp(attr.bv_val, "displayName") == 0)
				slot = &dname;
			else if (strcasecmp(attr.bv_val, "mail") == 0)
				slot = &mail;
			else if (strcasecmp(attr.bv_val,
			    "otasAccountStatus") == 0)
				slot = &status;
			else if (strcasecmp(attr.bv_val, "otasRole") == 0)
				slot = &role;
			if (slot != NULL && *slot == NULL)
				*slot = strndup(vals[0].bv_val,
				    vals[0].bv_len);
		}
		ber_memfree(vals);
		vals = NULL;
	}

	/* An account: otasAccount, named by uid, with a uid value. */
	if (has_aux && uid != NULL && strncmp(key, "uid=", 4) == 0) {
		memset(&acct, 0, sizeof(acct));
		acct.status = status != NULL && strcasecmp(status,
		    STATUS_ACTIVE) == 0 ? ST_ACTIVE : ST_INACTIVE;
		acct.role = role != NULL && strcasecmp(role,
		    ROLE_NAME_SUPERADMIN) == 0 ? ROLE_SUPERADMIN : ROLE_USER;
		/* The RDN value is the name others use for it. */
		free(uid);
		if ((uid = strndup(ldn[0][0]->la_value.bv_val,
		    ldn[0][0]->la_value.bv_len)) == NULL)
			goto out;
		acct.username = uid;
		acct.full_name = dname != NULL ? dname : cn != NULL ? cn :
		    (char *)(uintptr_t)"";
		acct.email = mail != NULL ? mail : (char *)(uintptr_t)"";
		r = view_rec_make(key, &acct);
	} else
		r = view_rec_make(key, NULL);
	if (r != NULL && has_uuid) {
		memcpy(r->uuid, uuid, 16);
		r->has_uuid = true;
	}
out:
	ber_memfree(vals);
	if (ber != NULL)
		ber_free(ber, 0);
	free(key);
	free(uid);
	free(cn);
	free(dname);
	free(mail);
	free(status);
	free(role);
	if (ldn != NULL)
		ldap_dnfree(ldn);
	return r;
}

/* Drop what the load that just ended did not see. */
static void
view_sweep(void)
{
	size_t	 dropped = 0;

	for (size_t i = 0; i < V.nbuckets; i++) {
		struct vrec	*r = V.kbuckets[i], *next;

		for (; r != NULL; r = next) {
			next = r->knext;
			if (r->gen != V.gen) {
				view_remove(r);
				dropped++;
			}
		}
	}
	if (dropped > 0)
		log_info("view: %zu entries went away while not watched",
		    dropped);
}

/* A load (refresh or full poll) has ended. */
static void
view_loaded(void)
{
	view_sweep();
	V.refreshing = false;
	if (!V.ready || log_enabled(LOGL_DEBUG))
		log_info("view: %zu entries (%zu accounts) loaded in %llu ms; "
		    "%s", V.nentries, V.sorted.n,
		    (unsigned long long)(now_ms() - V.load_start_ms),
		    V.mode == VIEW_SYNC ? "following changes (syncprov)" :
		    "re-reading periodically");
	V.ready = true;
}

/* ------------------------------------------------------------------ */
/* the sync protocol (RFC 4533) */

/* The sync state control of an entry: state and entryUUID. */
static int
view_sync_state(LDAP *ld, LDAPMessage *e, int *state, unsigned char *uuid)
{
	LDAPControl	**ctrls = NULL, *c;
	BerElement	 *ber = NULL;
	struct berval	  bv;
	ber_int_t	  st;
	int		  rc = -1;

	if (ldap_get_entry_controls(ld, e, &ctrls) != LDAP_SUCCESS ||
	    ctrls == NULL)
		return -1;
	if ((c = ldap_control_find(LDAP_CONTROL_SYNC_STATE, ctrls, NULL)) ==
	    NULL || (ber = ber_init(&c->ldctl_value)) == NULL)
		goto out;
	if (ber_scanf(ber, "{em", &st, &bv) == LBER_ERROR || bv.bv_len != 16)
		goto out;
	*state = st;
	memcpy(uuid, bv.bv_val, 16);
	rc = 0;
out:
	if (ber != NULL)
		ber_free(ber, 1);
	ldap_controls_free(ctrls);
	return rc;
}

/* An entry from a search (sync or re-read). */
static void
view_entry(LDAP *ld, LDAPMessage *msg)
{
	struct vrec	*r, *old;
	unsigned char	 uuid[16];
	int		 state = LDAP_SYNC_ADD;

	if (V.mode == VIEW_SYNC &&
	    view_sync_state(ld, msg, &state, uuid) != 0) {
		log_debug("view: entry without a sync state; ignored");
		return;
	}
	if (state == LDAP_SYNC_DELETE || state == LDAP_SYNC_PRESENT) {
		if ((old = view_find_uuid(uuid)) == NULL) {
			/* Deleted entries may come with a DN only. */
			if ((r = view_rec_from_entry(ld, msg)) != NULL) {
				old = view_find_key(r->key);
				view_rec_free(r);
			}
		}
		if (old == NULL)
			return;
		if (state == LDAP_SYNC_DELETE)
			view_remove(old);
		else
			old->gen = V.gen;
		return;
	}
	if ((r = view_rec_from_entry(ld, msg)) == NULL)
		return;
	if (V.mode == VIEW_SYNC) {
		memcpy(r->uuid, uuid, 16);
		r->has_uuid = true;
	}
	view_upsert(r);
}

/*
 * Enter the SEQUENCE of a syncInfo refreshDelete / refreshPresent /
 * syncIdSet and step over its optional cookie (ours is not kept: a new
 * session starts with a full refresh).  *tag is then the tag of what
 * follows -- LBER_DEFAULT if nothing does, which is not an error: every
 * field may be absent.  Returns -1 if the message is malformed.
 */
static int
sync_info_open(BerElement *ber, ber_tag_t *tag)
{
	ber_len_t	 len;

	if (ber_scanf(ber, "{" /*}*/) == LBER_ERROR)
		return -1;
	*tag = ber_peek_tag(ber, &len);
	if (*tag == LDAP_TAG_SYNC_COOKIE) {
		if (ber_scanf(ber, "x") == LBER_ERROR)
			return -1;
		*tag = ber_peek_tag(ber, &len);
	}
	return 0;
}

/* A syncInfo intermediate message. */
static void
view_sync_info(LDAP *ld, LDAPMessage *msg)
{
	char		*oid = NULL;
	struct berval	*data = NULL;
	BerElement	*ber = NULL;
	ber_tag_t	 tag;
	ber_len_t	 len;

	if (ldap_parse_intermediate(ld, msg, &oid, &data, NULL, 0) !=
	    LDAP_SUCCESS || oid == NULL || strcmp(oid, LDAP_SYNC_INFO) != 0 ||
	    data == NULL || (ber = ber_init(data)) == NULL)
		goto out;
	tag = ber_peek_tag(ber, &len);
	if (tag == LDAP_TAG_SYNC_REFRESH_DELETE ||
	    tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
		ber_int_t	 done = 1;

		if (sync_info_open(ber, &tag) != 0)
			goto out;
		if (tag == LDAP_TAG_REFRESHDONE &&
		    ber_scanf(ber, "b", &done) == LBER_ERROR)
			goto out;
		if (done && V.refreshing)
			view_loaded();
	} else if (tag == LDAP_TAG_SYNC_ID_SET) {
		ber_int_t	 deletes = 0;
		BerVarray	 uuids = NULL;

		if (sync_info_open(ber, &tag) != 0)
			goto out;
		if (tag == LDAP_TAG_REFRESHDELETES &&
		    ber_scanf(ber, "b", &deletes) == LBER_ERROR)
			goto out;
		if (ber_scanf(ber, "[W]", &uuids) == LBER_ERROR)
			goto out;
		for (size_t i = 0; uuids != NULL && uuids[i].bv_val != NULL;
		    i++) {
			struct vrec	*r;

			if (uuids[i].bv_len != 16 || (r = view_find_uuid(
			    (unsigned char *)uuids[i].bv_val)) == NULL)
				continue;
			if (deletes)
				view_remove(r);
			else
				r->gen = V.gen;
		}
		ber_bvarray_free(uuids);
	}
	/* newcookie: we keep no cookie (every reconnect reloads). */
out:
	if (ber != NULL)
		ber_free(ber, 1);
	ldap_memfree(oid);
	ber_bvfree(data);
}

static void
view_msg(LDAP *ld, LDAPMessage *msg, void *arg)
{
	switch (ldap_msgtype(msg)) {
	case LDAP_RES_SEARCH_ENTRY:
		view_entry(ld, msg);
		break;
	case LDAP_RES_INTERMEDIATE:
		view_sync_info(ld, msg);
		break;
	default:
		break;
	}
}

static void
view_later(unsigned ms)
{
	struct timeval	 tv = { (time_t)(ms / 1000),
	    (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(V.timer, &tv);
}

/* Switch to periodic re-reads for good (until restart). */
static void
view_fallback(int rc, const char *diag)
{
	log_notice("view: cannot follow %s with syncprov (%s%s%s); re-reading "
	    "it every %u s instead -- changes by other LDAP clients show up "
	    "that late", D.cfg->people_dn, ldap_err2string(rc),
	    diag != NULL && diag[0] != '\0' ? ": " : "",
	    diag != NULL ? diag : "", D.cfg->reconcile_interval_s);
	V.mode = VIEW_POLL;
	view_start();
}

static void
view_sync_done(struct ldc_res *res, void *arg)
{
	V.op = NULL;
	switch (res->rc) {
	case LDC_ERR_DOWN:
		/* view_state() restarts us when the connection is back. */
		return;
	case LDAP_SIZELIMIT_EXCEEDED:
	case LDAP_UNAVAILABLE_CRITICAL_EXTENSION:
	case LDAP_UNWILLING_TO_PERFORM:
	case LDAP_PROTOCOL_ERROR:
	case LDAP_ADMINLIMIT_EXCEEDED:
		view_fallback(res->rc, res->diag);
		return;
	default:
		log_warnx("view: sync search ended: %s%s%s; restarting",
		    res->rc < 0 ? res->diag : ldap_err2string(res->rc),
		    res->diag != NULL && res->rc >= 0 ? ": " : "",
		    res->diag != NULL && res->rc >= 0 ? res->diag : "");
		view_later(1000);
	}
}

/* Start a refreshAndPersist search; the refresh reloads everything. */
static void
view_sync_start(void)
{
	BerElement	*ber;
	struct berval	 bv;
	LDAPControl	*ctrl = NULL, *ctrls[2];
	struct ldc_call	 call = {
		.deadline_ms = UINT64_MAX,
		.on_msg = view_msg,
		.done = view_sync_done,
	};

	if ((ber = ber_alloc_t(LBER_USE_DER)) == NULL)
		goto fail;
	if (ber_printf(ber, "{e}", (ber_int_t)LDAP_SYNC_REFRESH_AND_PERSIST) ==
	    -1 || ber_flatten2(ber, &bv, 0) != 0 ||
	    ldap_control_create(LDAP_CONTROL_SYNC, 1, &bv, 1, &ctrl) !=
	    LDAP_SUCCESS) {
		ber_free(ber, 1);
		goto fail;
	}
	ber_free(ber, 1);
	ctrls[0] = ctrl;
	ctrls[1] = NULL;
	call.ctrls = ctrls;
	V.op = ldc_search(V.ldc, &call, D.cfg->people_dn, LDAP_SCOPE_ONELEVEL,
	    "(objectClass=*)", view_attrs, 0);
	ldap_control_free(ctrl);
	if (V.op == NULL)
		goto fail;
	return;
fail:
	log_warnx("view: cannot start the sync search; retrying");
	view_later(1000);
}

/* ------------------------------------------------------------------ */
/* re-reads (no syncprov, or a size limit on the sync refresh) */

static void
view_scan_entry(LDAP *ld, LDAPMessage *msg, void *arg)
{
	view_entry(ld, msg);
}

static void
view_scan_done(int rc, const char *diag, unsigned searches, void *arg)
{
	V.scan = NULL;
	if (rc == LDC_ERR_DOWN)
		return;		/* view_state() restarts us */
	if (rc != LDAP_SUCCESS) {
		log_warnx("view: reading %s failed: %s", D.cfg->people_dn,
		    rc < 0 ? diag : ldap_err2string(rc));
		V.refreshing = false;
		view_later(1000 * D.cfg->reconcile_interval_s);
		return;
	}
	if (searches > 1)
		log_debug("view: read %s in %u searches (size limit)",
		    D.cfg->people_dn, searches);
	view_loaded();
	view_later(1000 * D.cfg->reconcile_interval_s);
}

static void
view_scan_start(void)
{
	V.scan = dir_scan(V.ldc, view_attrs, view_scan_entry, NULL,
	    view_scan_done, NULL);
	if (V.scan == NULL) {
		log_warnx("view: cannot start reading %s; retrying",
		    D.cfg->people_dn);
		V.refreshing = false;
		view_later(1000);
	}
}

/* ------------------------------------------------------------------ */

/* Begin a (re)load in the current mode, if the connection is up. */
static void
view_start(void)
{
	if (V.op != NULL || V.scan != NULL || V.ldc == NULL ||
	    ldc_state(V.ldc) != LDC_UP)
		return;
	V.gen++;
	V.refreshing = true;
	V.load_start_ms = now_ms();
	if (V.mode == VIEW_SYNC)
		view_sync_start();
	else
		view_scan_start();
}

static void
view_timer(evutil_socket_t fd, short ev, void *arg)
{
	view_start();
}

/*
 * A persistent search says nothing while nothing changes, so a server that
 * froze, or a network path that died without a reset, would leave the
 * view following nothing for ever.  Every reconcile_interval_s a tiny read
 * goes down the same connection with the usual deadline: if it meets its
 * deadline with nothing heard since it was sent, ldc drops the connection
 * (ldc_op_timeout) and the view reloads once it is back.
 */
static void
view_probe_done(struct ldc_res *res, void *arg)
{
	V.probe = NULL;
}

static void
view_probe(evutil_socket_t fd, short ev, void *arg)
{
	static const char *const none[] = { "1.1", NULL };
	struct timeval	 tv = { (time_t)D.cfg->reconcile_interval_s, 0 };
	struct ldc_call	 call = { .done = view_probe_done };

	if (V.probe == NULL && V.ldc != NULL && ldc_state(V.ldc) == LDC_UP &&
	    V.mode == VIEW_SYNC && V.op != NULL)
		V.probe = ldc_search(V.ldc, &call, D.cfg->people_dn,
		    LDAP_SCOPE_BASE, "(objectClass=*)", none, 0);
	evtimer_add(V.probe_timer, &tv);
}

static void
view_state(enum ldc_state s, void *arg)
{
	if (s == LDC_UP)
		view_start();
}

void
view_init(void)
{
	struct ldc_opts	 o = {
		.name = "view",
		.bind = true,
		.on_state = view_state,
	};

	if (getrandom(&V.seed, sizeof(V.seed), 0) != sizeof(V.seed))
		V.seed = (uint64_t)now_ms();
	V.sorted.key = view_lname;
	V.mode = VIEW_SYNC;
	if ((V.timer = evtimer_new(D.base, view_timer, NULL)) == NULL ||
	    (V.probe_timer = evtimer_new(D.base, view_probe, NULL)) == NULL ||
	    (V.ldc = ldc_new(&o)) == NULL)
		fatalx("view: cannot create the directory connection");
	view_probe(-1, 0, NULL);
}

void
view_shutdown(void)
{
	if (V.op != NULL)
		ldc_cancel(V.op);
	V.op = NULL;
	if (V.probe != NULL)
		ldc_cancel(V.probe);
	V.probe = NULL;
	event_freep(&V.probe_timer);
	dir_scan_cancel(V.scan);
	V.scan = NULL;
	ldc_free(V.ldc);
	V.ldc = NULL;
	event_freep(&V.timer);
	for (size_t i = 0; i < V.nbuckets; i++) {
		struct vrec	*r = V.kbuckets[i], *next;

		for (; r != NULL; r = next) {
			next = r->knext;
			view_rec_free(r);
		}
	}
	free(V.kbuckets);
	free(V.ubuckets);
	ordset_clear(&V.sorted);
	memset(&V, 0, sizeof(V));
}

/* ------------------------------------------------------------------ */
/* reading */

bool
view_ready(void)
{
	return V.ready;
}

bool
view_live(void)
{
	return V.ready && V.mode == VIEW_SYNC && V.op != NULL;
}

/*
 * Is the view's count as fresh as a count of the server at uri would be?
 * Only while it follows that server's changes (persist phase, not
 * reloading): then every add and delete there reaches it within
 * milliseconds, as soon as a count would see it.
 */
bool
view_current(const char *uri)
{
	const char	*vu = ldc_uri(V.ldc);

	return view_live() && !V.refreshing && uri != NULL && vu != NULL &&
	    strcmp(uri, vu) == 0;
}

const struct account *
view_get(const char *username)
{
	char		 key[USERNAME_MAX * 3 + 8];
	struct vrec	*r;
	size_t		 n;

	n = (size_t)snprintf(key, sizeof(key), "uid=%s", username);
	if (n >= sizeof(key))
		return NULL;
	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	r = view_find_key(key);
	return r != NULL && r->is_account ? &r->a : NULL;
}

size_t
view_seats_used(void)
{
	return V.nentries;
}

void
view_counts(size_t *active, size_t *inactive, size_t *superadmins)
{
	if (active != NULL)
		*active = V.nactive;
	if (inactive != NULL)
		*inactive = V.ninactive;
	if (superadmins != NULL)
		*superadmins = V.nsuper_active;
}

size_t
view_active_superadmins(const char *except)
{
	const struct account	*a;
	size_t			 n = V.nsuper_active;

	if (except != NULL && (a = view_get(except)) != NULL &&
	    a->status == ST_ACTIVE && a->role == ROLE_SUPERADMIN && n > 0)
		n--;
	return n;
}

void
view_walk(const char *after, bool (*fn)(const struct account *, void *),
    void *arg)
{
	struct ordset_pos	 p = { 0, 0 };
	const struct vrec	*r;

	if (after != NULL) {
		char	*l = lower_dup(after);

		if (l == NULL)
			return;
		p = ordset_bound(&V.sorted, l, true);
		free(l);
	}
	while ((r = ordset_next(&V.sorted, &p)) != NULL)
		if (!fn(&r->a, arg))
			break;
}

/* ------------------------------------------------------------------ */
/* writers */

void
view_put(const struct account *a)
{
	struct vrec	*r, *old;

	if ((r = view_rec_from_account(a)) == NULL) {
		log_warnx("view: out of memory");
		return;
	}
	/* Keep what only the directory knows (the entryUUID). */
	if ((old = view_find_key(r->key)) != NULL && old->has_uuid) {
		memcpy(r->uuid, old->uuid, 16);
		r->has_uuid = true;
	}
	view_upsert(r);
}

void
view_drop(const char *username)
{
	char		 key[USERNAME_MAX * 3 + 8];
	struct vrec	*r;

	if ((size_t)snprintf(key, sizeof(key), "uid=%s", username) >=
	    sizeof(key))
		return;
	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((r = view_find_key(key)) != NULL)
		view_remove(r);
}
