/*
 * proto.h - the otasdird socket protocol, shared by otasdird and otasctl.
 *
 * Framing: JSON-RPC 2.0 over a Unix stream socket, one JSON text per line
 * ("\n"), UTF-8.  Requests may be pipelined; replies carry the request's id
 * and may come back in any order.  Batches (arrays) and notifications (no
 * "id") follow JSON-RPC 2.0.  docs/protocol.md describes every method,
 * param, result and error; tests/integ/test_docs.py checks that every
 * method in the daemon's dispatch table is documented there.
 */
#ifndef OTASDIR_PROTO_H
#define OTASDIR_PROTO_H

#define OTASDIR_VERSION		"0.1.0"
#define OTASDIR_DEFAULT_SOCKET	"/run/otasdird/otasdird.sock"
#define OTASDIR_DEFAULT_CONFIG	"/etc/otasdir/otasdird.yaml"

/* JSON-RPC 2.0 standard errors. */
#define RPC_PARSE_ERROR		(-32700)
#define RPC_INVALID_REQUEST	(-32600)
#define RPC_METHOD_NOT_FOUND	(-32601)
#define RPC_INVALID_PARAMS	(-32602)	/* data.field names the param */
#define RPC_INTERNAL_ERROR	(-32603)

/* Application errors; each carries data.reason (the string below). */
#define RPC_PERMISSION_DENIED	(-32001)
#define RPC_NOT_FOUND		(-32002)
#define RPC_ALREADY_EXISTS	(-32003)
#define RPC_SEAT_LIMIT		(-32004)	/* data.seats, data.used */
#define RPC_CONFIRMATION	(-32005)
#define RPC_INVALID_CREDENTIALS	(-32006)
#define RPC_ACCOUNT_INACTIVE	(-32007)
#define RPC_LAST_SUPERADMIN	(-32008)
#define RPC_DIR_UNAVAILABLE	(-32010)
#define RPC_TIMEOUT		(-32011)
#define RPC_OVERLOADED		(-32012)
#define RPC_RATE_LIMITED	(-32013)	/* data.retry_after_s */

#define REASON_PERMISSION_DENIED	"permission_denied"
#define REASON_NOT_FOUND		"not_found"
#define REASON_ALREADY_EXISTS		"already_exists"
#define REASON_SEAT_LIMIT		"seat_limit_reached"
#define REASON_CONFIRMATION		"confirmation_required"
#define REASON_INVALID_CREDENTIALS	"invalid_credentials"
#define REASON_ACCOUNT_INACTIVE		"account_inactive"
#define REASON_LAST_SUPERADMIN		"last_superadmin"
#define REASON_DIR_UNAVAILABLE		"directory_unavailable"
#define REASON_TIMEOUT			"timeout"
#define REASON_OVERLOADED		"overloaded"
#define REASON_RATE_LIMITED		"rate_limited"

/* Limits on what a client may send (CONTRACT.md, "Validation"). */
#define USERNAME_MAX		64
#define EMAIL_MAX		254
#define FULLNAME_MAX		256
#define PASSWORD_MIN		8
#define PASSWORD_MAX		256
#define LIST_LIMIT_DEFAULT	100
#define LIST_LIMIT_MAX		1000

#define STATUS_ACTIVE		"active"
#define STATUS_INACTIVE		"inactive"
#define ROLE_NAME_SUPERADMIN	"superadmin"
#define ROLE_NAME_USER		"user"

#endif /* OTASDIR_PROTO_H */
