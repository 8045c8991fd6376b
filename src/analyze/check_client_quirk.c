/* src/analyze/check_client_quirk.c - client-quirk: what known clients, recognised by their
 * User-Agent, do with what the capture shows them, where their rule differs from the plain
 * reading of RFC 9112. One finding per quirk seen, its id always client-quirk, the quirk named
 * in what it says. Each quirk is a row of the table below with its source; docs/knowledge.md
 * gives the same sources. */
#include <stdio.h>
#include <string.h>

#include "analyze/check.h"
#include "capture/har.h"

static int run(const struct shunt_model *m, struct shunt_findings *out);

const struct shunt_check shunt_check_client_quirk = {
    .id = "client-quirk",
    .title = "a known client's quirk",
    .looks_for = "exchanges of a client known by its User-Agent (Java's HttpURLConnection, "
                 ".NET's HttpClient in PowerShell, curl, Go, Chrome) whose heads meet a rule "
                 "of that client that differs from RFC 9112's plain reading; the finding names "
                 "the client, the rule and its source",
    .evidence = "the User-Agent and heads of the request as the client sent it, and the "
                "response head as the client got it",
    .why = "Clients decide keep-alive and authentication by their own code, not only by the "
           "RFC: Java's HttpURLConnection keeps an HTTP/1.1 connection only when Connection is "
           "absent or exactly keep-alive; .NET's HttpClient answers an NTLM or Negotiate "
           "challenge relayed by a proxy only with Proxy-Support: Session-Based-Authentication "
           "(RFC 4559 6); curl, Go and Chrome judge persistence by the response's version, "
           "not by the HTTP/1.0 they asked in. What each finding says names the rule.",
    .fix = "send the client what its rule needs: no Connection field but close or keep-alive "
           "to Java; Proxy-Support: Session-Based-Authentication from a proxy that pairs "
           "connections (shunt proxy does, unless --no-proxy-support); to an HTTP/1.0 "
           "keep-alive request, answer Connection: keep-alive, or close explicitly.",
    .proof = "shunt sessions FILE '~hq \"^user-agent: .*CLIENT\"' lists the client's "
             "exchanges (CLIENT: Java/, PowerShell/, curl/, Go-http-client/, Chrome/); then "
             "the same client again through shunt proxy --modify-headers "
             "'/~hs \"^connection: (?!close)\"/Connection/keep-alive' (Java), or through "
             "shunt proxy without --no-proxy-support (.NET): the finding goes away.",
    .run = run,
};

/* ---------------------------------------------------------------- the rules */

/* Java: an HTTP/1.1 response with a Connection field whose value is not exactly keep-alive
 * (and not close: that closes for everyone). */
static int java_connection_not_keepalive(const struct shunt_model_exchange *e)
{
    struct shunt_slice v;
    if (e->status == 0 || e->resp_http10 || !shunt_model_field(e->resp_down, "Connection", &v))
        return 0;
    if (shunt_slice_ieq(v, "keep-alive", 10) ||
        shunt_model_field_has_token(e->resp_down, "Connection", "close"))
        return 0;
    return 1;
}

/* The request target of <e> as the client sent it is absolute-form: it talked to a proxy. */
static int through_proxy(const struct shunt_model_exchange *e)
{
    if (e->req.base == NULL)
        return 0;
    size_t pos = 0;
    struct shunt_slice l = shunt_har_head_start(e->req.base, e->req.len, &pos);
    const char *sp = memchr(l.base, ' ', l.len);
    if (sp == NULL)
        return 0;
    size_t rest = l.len - (size_t)(sp + 1 - l.base);
    return (rest >= 7 && memcmp(sp + 1, "http://", 7) == 0) ||
           (rest >= 8 && memcmp(sp + 1, "https://", 8) == 0);
}

/* .NET: an NTLM or Negotiate challenge relayed by a proxy without Proxy-Support:
 * Session-Based-Authentication. */
static int dotnet_no_proxy_support(const struct shunt_model_exchange *e)
{
    return e->status == 401 && (e->challenge & SHUNT_MODEL_AUTH_BOUND) && through_proxy(e) &&
           !shunt_model_field_has_token(e->resp_down, "Proxy-Support",
                                        "Session-Based-Authentication");
}

/* curl, Go, Chrome: an HTTP/1.0 request with Connection: keep-alive answered in HTTP/1.1
 * without keep-alive or close: the client keeps the connection by the response's version. */
static int http10_keepalive_answered_11(const struct shunt_model_exchange *e)
{
    return e->status != 0 && e->req_http10 && !e->resp_http10 && e->resp_down.base != NULL &&
           shunt_model_field_has_token(e->req, "Connection", "keep-alive") &&
           !shunt_model_field_has_token(e->resp_down, "Connection", "keep-alive") &&
           !shunt_model_field_has_token(e->resp_down, "Connection", "close");
}

/* One quirk: which client (a User-Agent substring), when it applies, what it does, and the
 * source that says so. */
struct quirk {
    const char *name;   /* id-suffix: "java-connection-token" */
    const char *ua;     /* substring of the User-Agent, case sensitive */
    const char *client; /* how the finding names the client */
    int (*applies)(const struct shunt_model_exchange *e);
    const char *rule;   /* what the client does, one clause */
    const char *source; /* the file or document that says so */
};

static const struct quirk quirks[] = {
    {"java-connection-token", "Java/", "Java's HttpURLConnection",
     java_connection_not_keepalive,
     "treats an HTTP/1.1 response whose Connection is anything but exactly keep-alive as the "
     "end of the connection (\"the only Connection token we understand is close\")",
     "OpenJDK sun/net/www/http/HttpClient.java, parseHTTPHeader"},
    {"dotnet-proxy-support", "PowerShell/", ".NET's HttpClient (PowerShell)",
     dotnet_no_proxy_support,
     "does not answer an NTLM or Negotiate challenge relayed by a proxy that did not add "
     "Proxy-Support: Session-Based-Authentication, and returns the 401",
     "dotnet/runtime SocketsHttpHandler/AuthenticationHelper.NtAuth.cs, "
     "ProxySupportsConnectionAuth; RFC 4559 section 6"},
    {"http10-keepalive-curl", "curl/", "curl", http10_keepalive_answered_11,
     "asked in HTTP/1.0 with Connection: keep-alive, keeps a connection answered in HTTP/1.1 "
     "without Connection: keep-alive (it assumes the close only for an HTTP/1.0 response), "
     "while the server may apply HTTP/1.0's rule and close it",
     "curl lib/http.c (\"HTTP 1.0, assume close after body\" on the response's version)"},
    {"http10-keepalive-go", "Go-http-client/", "Go's net/http", http10_keepalive_answered_11,
     "asked in HTTP/1.0 with Connection: keep-alive, keeps a connection answered in HTTP/1.1 "
     "without Connection: keep-alive (shouldClose reads the response's version), while the "
     "server may apply HTTP/1.0's rule and close it",
     "Go net/http/transfer.go, shouldClose"},
    {"http10-keepalive-chrome", "Chrome/", "Chrome", http10_keepalive_answered_11,
     "asked in HTTP/1.0 with Connection: keep-alive, keeps a connection answered in HTTP/1.1 "
     "without Connection: keep-alive (IsKeepAlive reads the response's version), while the "
     "server may apply HTTP/1.0's rule and close it",
     "Chromium net/http/http_response_headers.cc, HttpResponseHeaders::IsKeepAlive"},
};

#define N_QUIRKS (sizeof(quirks) / sizeof(quirks[0]))

/* Does quirk <q> apply to exchange <e>, selected or not? Its client by User-Agent, and its
 * rule. Every rule of the table is about HTTP/1.x (Connection, HTTP/1.0 keep-alive,
 * connection-bound authentication). */
static int meets(const struct quirk *q, const struct shunt_model_exchange *e)
{
    struct shunt_slice ua;
    size_t l = strlen(q->ua);
    if (!shunt_model_http1(e) || !shunt_model_field(e->req, "User-Agent", &ua) || ua.len < l)
        return 0;
    for (size_t i = 0; i + l <= ua.len; i++)
        if (memcmp(ua.base + i, q->ua, l) == 0)
            return q->applies(e);
    return 0;
}

/* Does quirk <q> apply to exchange <e>, one the FILTER takes? */
static int quirk_applies(const struct quirk *q, const struct shunt_model_exchange *e)
{
    return e->selected && meets(q, e);
}

const char *shunt_check_quirk_of(const struct shunt_model_exchange *e)
{
    for (size_t i = 0; i < N_QUIRKS; i++)
        if (meets(&quirks[i], e))
            return quirks[i].name;
    return NULL;
}

/* Adds the finding of quirk <q> when it applies to some exchange: the exchanges, and what the
 * ends of connections right after it cost when the client closed them. */
static int report(const struct shunt_model *m, const struct quirk *q, struct shunt_findings *out)
{
    size_t n = 0, reopened = 0, handshakes = 0;
    int64_t lost_us = 0;
    for (size_t i = 0; i < m->n_conns; i++) {
        const struct shunt_model_conn *c = &m->conns[i];
        for (size_t k = 0; k < c->n_ex; k++) {
            if (!quirk_applies(q, &c->ex[k]))
                continue;
            n++;
            if (k + 1 == c->n_ex && strcmp(c->closer, "client") == 0) {
                struct shunt_check_cost cost = shunt_check_reopen_cost(c);
                reopened += (size_t)cost.followed;
                lost_us = shunt_model_add(lost_us, cost.us);
                handshakes += cost.handshakes;
            }
        }
    }
    if (n == 0)
        return 0;
    struct shunt_finding *f = shunt_finding_add(out, &shunt_check_client_quirk,
                                                SHUNT_CONFIDENCE_LIKELY);
    if (f == NULL)
        return SHUNT_ENOMEM;
    shunt_finding_measure(f, n, "exchanges", lost_us, handshakes, reopened);
    shunt_finding_what(f, "%s (%s): %zu exchange%s where the client %s; %zu connection%s "
                       "closed by the client right after, then opened again. Source: %s.",
                       q->name, q->client, n, n == 1 ? "" : "s", q->rule, reopened,
                       reopened == 1 ? "" : "s", q->source);
    for (size_t i = 0; i < m->n_ex && f->n_exchanges < SHUNT_CHECK_EXAMPLES; i++)
        if (quirk_applies(q, &m->ex[i]))
            shunt_finding_example(f, m->ex[i].conn_id, m->ex[i].id);
    return 0;
}

static int run(const struct shunt_model *m, struct shunt_findings *out)
{
    for (size_t i = 0; i < N_QUIRKS; i++) {
        int rc = report(m, &quirks[i], out);
        if (rc != 0)
            return rc;
    }
    return 0;
}
