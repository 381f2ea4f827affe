/*
 * fuzz_cfg.c - libFuzzer target for cfg_load: the input is written to a
 * file (cfg_load reads files, and checks their size with fstat) and
 * loaded without CFG_LOAD_SECRET; a success is freed, a failure must come
 * with at least one "file:..." problem.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *       -Isrc -Idaemon -I/usr/include/cjson tests/fuzz/fuzz_cfg.c \
 *       daemon/cfg.c daemon/log.c -lyaml -lldap -llber -o fuzz_cfg
 *   ./fuzz_cfg -max_len=4096 corpus-cfg/ conf/
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otasdird.h"

struct daemon	 D;	/* what otasdird.c would define */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	 path[64];

/* Write data to path; aborts on failure (a broken harness, not a bug). */
static void
fuzz_write(const uint8_t *data, size_t size)
{
	int	 fd;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/otasdir-fuzz-cfg-%d.yaml",
		    (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	while (size > 0) {
		ssize_t	 n = write(fd, data, size);

		if (n <= 0)
			abort();
		data += n;
		size -= (size_t)n;
	}
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_errors errs = { NULL, 0 };
	struct cfg	*c = NULL;
	size_t		 plen;

	fuzz_write(data, size);
	plen = strlen(path);
	if (cfg_load(path, 0, &c, &errs) == 0) {
		if (c == NULL || errs.n != 0 || c->ldap_uris.n == 0 ||
		    c->people_dn == NULL || c->counter_dn == NULL ||
		    c->seats < 1 || c->seats > 10000000 ||
		    (c->socket_mode & ~0775) != 0)
			abort();
		cfg_free(c);
	} else {
		if (c != NULL || errs.n == 0)
			abort();
		/* Every problem is "file:line: message" or "file: ...". */
		for (size_t i = 0; i < errs.n; i++)
			if (strncmp(errs.v[i], path, plen) != 0 ||
			    errs.v[i][plen] != ':')
				abort();
		cfg_errors_free(&errs);
	}
	return 0;
}
