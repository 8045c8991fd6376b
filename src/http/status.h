/* src/http/status.h - reason phrases of status codes. */
#ifndef SHUNT_HTTP_STATUS_H
#define SHUNT_HTTP_STATUS_H

/* Returns the static reason phrase of <status> (RFC 9110 section 15, and the registered codes
 * of RFC 5842, 6585, 7725 and 8297 that shunt may meet), or, for a code with none, the name
 * of its class ("Client Error"). Any thread. */
const char *shunt_http_reason_phrase(int status);

#endif
