/* src/analyze/check.h - the interface of a diagnose check: what it is (id, title, what it
 * looks for, the evidence it needs, why the behaviour happens, the fix, how to prove it with
 * shunt) and a run function that reads the model and adds findings. Adding a check means one
 * file src/analyze/check_<id>.c defining its struct and one line in checks.c. */
#ifndef SHUNT_ANALYZE_CHECK_H
#define SHUNT_ANALYZE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "analyze/model.h"
#include "core/errors.h"

/* Example ids a finding keeps (the issue asks for three). */
#define SHUNT_CHECK_EXAMPLES 3

/* How sure a finding is. */
enum shunt_confidence {
    SHUNT_CONFIDENCE_POSSIBLE, /* the pattern is there, its cause is a guess */
    SHUNT_CONFIDENCE_LIKELY,   /* the pattern and most of its evidence */
    SHUNT_CONFIDENCE_CERTAIN,  /* every piece of evidence the check asks for */
};

struct shunt_findings;

/* A check. Plain, static data. Texts are full sentences without line breaks; the printer
 * wraps them. */
struct shunt_check {
    const char *id;        /* "wininet-auth-close": lower case, dashes */
    const char *title;     /* one line */
    const char *looks_for; /* the pattern, in the capture's terms */
    const char *evidence;  /* what must be in the capture for the check to speak */
    const char *why;       /* the mechanism, two or three sentences */
    const char *fix;       /* what to change, where */
    const char *proof;     /* how to prove it with shunt: a rule, an option, a command */
    const char *const *caused_by; /* ids of checks whose findings explain this one (it is
                                     then ranked right after them), NULL-terminated; or NULL */
    /* Reads <m> and adds findings to <out> with shunt_finding_add(). Returns 0, or
     * SHUNT_ENOMEM. Only exchanges and connections marked selected count. */
    int (*run)(const struct shunt_model *m, struct shunt_findings *out);
};

/* One finding. Plain data, filled by the check that adds it. */
struct shunt_finding {
    const struct shunt_check *check;     /* who found it */
    enum shunt_confidence confidence;
    size_t count;                        /* occurrences, in <unit> */
    const char *unit;                    /* static plural noun: "connections", "exchanges" */
    char what[512];                      /* what happened, one or two sentences */
    int64_t conns[SHUNT_CHECK_EXAMPLES]; /* example connection ids */
    size_t n_conns;
    int64_t exchanges[SHUNT_CHECK_EXAMPLES]; /* example exchange ids */
    size_t n_exchanges;
    int64_t lost_us;                     /* estimated time lost, microseconds, >= 0 */
    size_t lost_handshakes;              /* estimated authentication handshakes lost */
    size_t lost_connections;             /* estimated connections opened for nothing */
    const char *cause;                   /* id of the check whose finding causes this one,
                                            when the check that adds it knows (a finding-level
                                            caused_by: server-closes-keepalive's closes forced
                                            by bodies without a length); NULL: its check's
                                            caused_by decide */
    const char *explained_by;            /* id of a check whose finding causes this one, or
                                            NULL; set by the ranking */
    size_t explained_rank;               /* that finding's rank (1, 2, ...), 0 none; set by
                                            the ranking */
};

/* The findings of a run, in the order added until ranked. */
struct shunt_findings {
    struct shunt_finding *v;
    size_t n, cap;
};

/* ---------------------------------------------------------------- adding findings */

/*
 * Appends a finding of <check> to <out>, zeroed but for check and confidence, and returns it
 * for the check to fill (valid until the next add), or NULL when out of memory.
 */
struct shunt_finding *shunt_finding_add(struct shunt_findings *out,
                                        const struct shunt_check *check,
                                        enum shunt_confidence confidence);

/* Sets how much <f> found: <count> occurrences of <unit> (a static plural noun), and the
 * estimated loss: <lost_us> microseconds, <lost_handshakes> authentication handshakes,
 * <lost_connections> connections opened for nothing. */
void shunt_finding_measure(struct shunt_finding *f, size_t count, const char *unit,
                           int64_t lost_us, size_t lost_handshakes, size_t lost_connections);

/* Writes what happened into <f> (printf format, cut at its size). */
void shunt_finding_what(struct shunt_finding *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Keeps connection <conn_id> and exchange <exchange_id> (0: none) as examples while there is
 * room, skipping ids already kept. */
void shunt_finding_example(struct shunt_finding *f, int64_t conn_id, int64_t exchange_id);

/* Frees the findings of <out>; the struct itself is the caller's. */
void shunt_findings_dispose(struct shunt_findings *out);

/* ---------------------------------------------------------------- shared measures */

/* What a connection's end cost: the connection the same client opened next to the same
 * origin, its connect time and its handshakes. */
struct shunt_check_cost {
    int followed;       /* 1 when the client opened another connection to that origin after */
    int64_t us;         /* its connect time and its NTLM or Negotiate 401 legs */
    size_t handshakes;  /* handshakes it had to start again */
};

/* Measures what the end of <c> cost: the connection that replaced it (c->next), its connect
 * time and handshakes. Pure. */
struct shunt_check_cost shunt_check_reopen_cost(const struct shunt_model_conn *c);

/* ---------------------------------------------------------------- ends the checks claim */

/* The checks about why a connection ended each claim some connections; a check that speaks
 * about what is left (low-reuse), or that must not speak where another one does
 * (client-closes-early and wininet-auth-close), asks these. All pure; none looks at
 * c->selected nor at whether a new connection followed unless it says so. */

/* Did the request of <e> (as the client sent it) ask to keep its connection? Not with
 * Connection: close, nor as HTTP/1.0 without Connection: keep-alive (RFC 9112 9.3): a client
 * that asked for the close got what it asked for. HTTP/2 and HTTP/3 always keep it. */
int shunt_check_wants_keepalive(const struct shunt_model_exchange *e);

/* The rule of the user's that ended <c>: its last exchange wanted the connection kept (the
 * client's request did, and the server's response did not end it), and the head as shunt
 * passed it on says close only because a rule of the user's changed it: the response sent
 * to the client (*<on_request> 0; shunt then closes the connection itself, as a proxy that
 * says close must) or the request sent to the server (*<on_request> 1; the server then
 * closed it, as asked). Returns the rule's name (the changes table's by), or NULL. Such a
 * close is neither the client's nor the server's doing. */
const char *shunt_check_rule_closed(const struct shunt_model_conn *c, int *on_request);

/* The quirk of a known client (client-quirk's table, by User-Agent) that <e> meets, or NULL;
 * selection not looked at. The end of a connection right after such an exchange is the
 * quirk's: its client closes (Java) or gives up (.NET), or keeps a connection the server
 * may close (HTTP/1.0 keep-alive answered in HTTP/1.1). */
const char *shunt_check_quirk_of(const struct shunt_model_exchange *e);

/* wininet-auth-close's pattern: <c> ended right after a non-401 response in an
 * authentication context that had no Server (or named IIS 1.0-3.0) and did not itself end
 * the connection, to a request that asked to keep it (a client that did not ask closed
 * nothing early), over HTTP/1.x, and the client closed it with a FIN. Returns 1 with that response in
 * *<last> and *<certain> set when the capture saw the client's FIN; from a HAR (closer
 * unknown) a new handshake on the next connection stands in for the FIN (*<certain> 0). */
int shunt_check_wininet_close(const struct shunt_model_conn *c,
                              const struct shunt_model_exchange **last, int *certain);

/* server-closes-keepalive's pattern: the last response of <c>, as the server sent it, ended
 * it although the request asked to keep it, as the client sent it and as the server got it.
 * Returns the reason (shunt_model_server_closes()) or NULL; closes by the proxy itself, and
 * a close a rule asked the server for, are not the server's. */
const char *shunt_check_server_ended(const struct shunt_model_conn *c);

/* A handshake moved: the last response of <c> was an NTLM or Negotiate 401 and the next
 * connection to the origin carried on with an NTLM or Negotiate Authorization in its first
 * request (a pooling proxy or client that does not keep a handshake on one connection).
 * auth-connection-switch judges those legs; the close that moved them is not early. */
int shunt_check_handshake_moved(const struct shunt_model_conn *c);

/* client-closes-early's pattern: the client closed <c> (FIN or RST) after a whole HTTP/1.x
 * response that let it keep the connection, to a request that asked to keep it, a new
 * connection replaced it (c->next), and the close is neither wininet-auth-close's, a moved
 * handshake, a known client's quirk (shunt_check_quirk_of()) nor a rule's. Returns its last
 * exchange, or NULL. */
const struct shunt_model_exchange *shunt_check_client_early(const struct shunt_model_conn *c);

/* idle-timeout-race's pattern: the last request of <c>, sent on the reused connection after
 * a complete exchange, got no response because the server closed or reset the connection,
 * and the next connection of that client to that origin sent the same method and URL first.
 * Returns that request, with *<certain> set when the capture saw the server's close (a HAR
 * only says the request failed), or NULL. */
const struct shunt_model_exchange *shunt_check_idle_race(const struct shunt_model_conn *c,
                                                         int *certain);

/* The id of the check whose pattern explains the end of <c> (the patterns above; a moved
 * handshake counts as auth-connection-switch's, a rule's close as rule-closes-keepalive's, a
 * quirk's as client-quirk's), or NULL. */
const char *shunt_check_end_claimed(const struct shunt_model_conn *c);

/* Requests the application made on <c>: its exchanges but the NTLM and Negotiate 401 legs,
 * which are the price of a connection, not what it was for. Pure. */
size_t shunt_check_requests_on(const struct shunt_model_conn *c);

/* The name of confidence <c>: "possible", "likely", "certain". */
const char *shunt_confidence_name(enum shunt_confidence c);

/* ---------------------------------------------------------------- the table */

/* Every check, in the order they run (checks.c). */
extern const struct shunt_check *const shunt_checks[];
extern const size_t shunt_n_checks;

#endif
