/*
 * clock.c - the daemon's one clock: monotonic milliseconds, for deadlines
 * and idle timers (wall-clock time appears only in logs and audit lines).
 */
#include <time.h>

#include "otasdird.h"

uint64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
