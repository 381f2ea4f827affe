/*
 * valid.h - validation of what clients send, shared by otasdird and otasctl.
 *
 * Every check returns NULL when the value is acceptable, or a short static
 * message (lower case, no trailing period) saying what is wrong.  The rules
 * are those of CONTRACT.md, "Validation".
 */
#ifndef OTASDIR_VALID_H
#define OTASDIR_VALID_H

#include <stdbool.h>
#include <stddef.h>

/* 1-64 of [A-Za-z0-9._-], starting with a letter or digit. */
const char	*valid_username(const char *s, size_t len);
/* exactly one '@', non-empty local part and domain, no spaces or control
 * characters, at most 254 bytes, valid UTF-8. */
const char	*valid_email(const char *s, size_t len);
/* 1-256 bytes of valid UTF-8 without control characters, not starting or
 * ending with white space. */
const char	*valid_full_name(const char *s, size_t len);
/* 8-256 bytes; no NUL. */
const char	*valid_password(const char *s, size_t len);
/* "active" or "inactive". */
const char	*valid_status(const char *s, size_t len);
/* "superadmin" or "user". */
const char	*valid_role(const char *s, size_t len);
/* A search text for user.list: 1-256 bytes of valid UTF-8, no control
 * characters. */
const char	*valid_search(const char *s, size_t len);

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above
 * U+10FFFF. */
bool		 utf8_valid(const char *s, size_t len);
/* Columns a UTF-8 string takes on a terminal (wcwidth-like; combining marks
 * 0, East Asian wide and emoji 2, everything else 1).  For table output. */
size_t		 utf8_width(const char *s);

/* Surname derived from a full name: its last whitespace-separated word, or
 * the whole name when it has one word.  Returns a malloc'd string. */
char		*name_surname(const char *full_name);

#endif /* OTASDIR_VALID_H */
