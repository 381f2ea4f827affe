/*
 * ident.c - who a peer on the socket is.
 *
 * The kernel tells us the peer's uid, gid and pid (SO_PEERCRED) and its
 * supplementary groups (SO_PEERGROUPS; SO_PEERCRED alone gives only the
 * primary gid, FIELD-NOTES).  Both are captured at connect time, like
 * every credential on a Unix socket.  Group names in admins.groups were
 * resolved to gids when the config was loaded, so nothing here looks up
 * NSS (which may block).
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "otasdird.h"

/* Read the peer's credentials and supplementary groups from fd. */
int
ident_peer(int fd, struct peer *p, gid_t **groups, size_t *ngroups)
{
	struct ucred	 uc;
	socklen_t	 len = sizeof(uc);
	gid_t		*g = NULL;

	*groups = NULL;
	*ngroups = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0)
		return -1;
	p->pid = uc.pid;
	p->uid = uc.uid;
	p->gid = uc.gid;

	/* Ask with a small buffer first; the kernel says how much it
	 * needs (ERANGE) when that is not enough. */
	len = 16 * sizeof(gid_t);
	for (int tries = 0; tries < 3; tries++) {
		gid_t	*ng = realloc(g, len > 0 ? len : sizeof(gid_t));

		if (ng == NULL) {
			free(g);
			return -1;
		}
		g = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			*groups = g;
			*ngroups = len / sizeof(gid_t);
			return 0;
		}
		if (errno != ERANGE)
			break;
	}
	/* No supplementary groups known: the primary gid still counts. */
	free(g);
	return 0;
}

static bool
ident_gid_admin(gid_t gid)
{
	const struct cfg	*cfg = D.cfg;

	for (size_t i = 0; i < cfg->n_admin_gids; i++)
		if (cfg->admin_gids[i] == gid)
			return true;
	return false;
}

/* A peer is a super admin when its uid is listed, or its primary or any
 * supplementary group is. */
void
ident_from_peer(const struct peer *p, const gid_t *groups, size_t ngroups,
    struct ident *id)
{
	const struct cfg	*cfg = D.cfg;
	bool			 admin = false;

	memset(id, 0, sizeof(*id));
	id->kind = IDENT_PEER;
	for (size_t i = 0; i < cfg->n_admin_uids && !admin; i++)
		admin = cfg->admin_uids[i] == p->uid;
	if (!admin)
		admin = ident_gid_admin(p->gid);
	for (size_t i = 0; i < ngroups && !admin; i++)
		admin = ident_gid_admin(groups[i]);
	id->role = admin ? ROLE_SUPERADMIN : ROLE_NONE;
}
