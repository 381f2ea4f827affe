/*
 * sd.c - the two small systemd protocols otasdird speaks: socket
 * activation (sd_listen_fds(3)) and readiness notification
 * (sd_notify(3)).  Written here rather than linked from libsystemd: both
 * are a few lines and the daemon then runs the same with or without it.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otasdird.h"

#define SD_LISTEN_FDS_START	3

/*
 * Count the sockets passed to us, if LISTEN_PID names this process.  The
 * variables are removed so that no child inherits them, and the fds are
 * marked close-on-exec.
 */
int
sd_listen_fds(void)
{
	const char	*pid_s = getenv("LISTEN_PID");
	const char	*fds_s = getenv("LISTEN_FDS");
	char		*end;
	long		 pid, n;
	int		 ret = 0;

	if (pid_s == NULL || fds_s == NULL)
		goto out;
	errno = 0;
	pid = strtol(pid_s, &end, 10);
	if (errno != 0 || *end != '\0' || pid != (long)getpid())
		goto out;
	n = strtol(fds_s, &end, 10);
	if (errno != 0 || *end != '\0' || n <= 0 || n > 64)
		goto out;
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	ret = (int)n;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return ret;
}

/* Send state to $NOTIFY_SOCKET (a path, or an abstract name after '@'). */
int
sd_notify(const char *state)
{
	const char		*path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un	 sun;
	socklen_t		 len;
	size_t			 plen;
	int			 fd, rc;

	if (path == NULL || path[0] == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    plen >= sizeof(sun.sun_path))
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) < 0 ? -1 : 0;
	close(fd);
	return rc;
}
