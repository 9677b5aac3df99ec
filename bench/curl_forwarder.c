/*
 * curl_forwarder: the least CPU a libcurl-based reverse proxy spends per request on this
 * machine (bench/run.sh, scenario curl-floor). One thread, one libevent 2.1 loop holding the
 * listening socket, the client connections and libcurl's sockets; libcurl's multi interface
 * is driven with curl_multi_socket_action. Easy handles come from a free list and the
 * upstream connections are kept alive in the multi handle's connection cache.
 *
 *   cc -O2 -Wall -Wextra -o curl_forwarder bench/curl_forwarder.c -levent_core -lcurl
 *   ./curl_forwarder PORT UPSTREAM_ORIGIN          e.g. ./curl_forwarder 8080 http://127.0.0.1:9000
 *
 * Per request it reads the request line and the header lines up to the blank line, sends the
 * method, the path (verbatim) and every request header except Connection and Keep-Alive (Host
 * is kept) to UPSTREAM_ORIGIN + path, and answers the client with the upstream's status, a
 * Content-Length and the upstream's body, keeping the client connection alive.
 *
 * It is a floor, not a proxy. It skips, on purpose:
 *  - request bodies: a request with Content-Length > 0 or Transfer-Encoding gets 501 and is
 *    closed; HEAD gets 501 (its answer would need the upstream's Content-Length);
 *  - the upstream's response headers: none is relayed, not even Content-Type; no Date/Server;
 *  - streaming: the whole upstream body is buffered (limit 16 MiB, else 502) before answering;
 *  - pipelining: a second request on a connection waits until the first one is answered;
 *  - HTTP/1.0 keep-alive (1.0 requests are answered and closed), obs-fold, absolute-form
 *    targets (400), requests over 16 KiB or 64 header lines (431);
 *  - any policy: no X-Forwarded-*, no request id, no access log, no timeouts (idle clients and
 *    slow upstreams are kept forever), no limits on connections, no TLS, no IPv6 listener.
 * On SIGINT/SIGTERM it frees everything and exits, so valgrind's leak report is meaningful.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_SIZE 16384            /* one request's head, and what may follow it */
#define MAX_HEADERS 64
#define HEADROOM 128             /* room for our status line + headers, in front of the body */
#define MAX_BODY (16u << 20)

struct conn {
    int fd;
    struct event rev, wev;       /* readable (always on, unless paused); writable (while output waits) */
    CURL *easy;                  /* the transfer in flight, or NULL */
    int busy, close_after, paused;
    size_t in_len, req_len;      /* bytes in `in`; bytes of the request being served */
    char in[IN_SIZE];            /* header strings point in here while the transfer runs */
    struct curl_slist hdrs[MAX_HEADERS + 1]; /* owned nodes: no curl_slist_append malloc */
    char *out;                   /* [HEADROOM - head ... HEADROOM + body) */
    size_t out_cap, out_len, out_off;
};

static struct event_base *base;
static CURLM *multi;
#define MAX_FD (1 << 16)      /* curl's sockets are indexed by fd; a higher one fails its transfer */
static struct event timer, *watch_ev[MAX_FD];  /* curl's sockets, by fd */
static short watch_flags[MAX_FD];              /* what each is registered for (0: nothing) */
static int timeout_due, stopping;
static CURL *free_easy[1024]; /* idle easy handles, options set */
static int n_free;

static void release_easy(CURL *e) {
    if (n_free < 1024) free_easy[n_free++] = e; else curl_easy_cleanup(e);
}
static const char *origin;
static size_t origin_len;
static char url[8192 + IN_SIZE];

static void next_request(struct conn *c);

static void close_conn(struct conn *c) {
    if (c->easy) { /* client gone mid-transfer: curl drops that upstream connection */
        curl_multi_remove_handle(multi, c->easy);
        release_easy(c->easy);
    }
    event_del(&c->rev), event_del(&c->wev);
    close(c->fd);
    free(c->out), free(c);
}

/* Send what is queued. Once all of it is out, the request is over: drop it from `in` and go
 * on with the next one, if its bytes are there already. */
static void flush(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) { event_add(&c->wev, NULL); return; }
        if (n < 0) { close_conn(c); return; }
        c->out_off += (size_t)n;
    }
    event_del(&c->wev);
    if (c->close_after) { close_conn(c); return; }
    c->busy = 0;
    c->out_len = c->out_off = 0;
    memmove(c->in, c->in + c->req_len, c->in_len - c->req_len);
    c->in_len -= c->req_len;
    c->req_len = 0;
    if (c->paused) { c->paused = 0; event_add(&c->rev, NULL); }
    if (c->in_len) next_request(c);
}

static int reserve(struct conn *c, size_t more) {
    if (c->out_len + more <= c->out_cap) return 0;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more) cap *= 2;
    char *p = realloc(c->out, cap);
    if (p) c->out = p, c->out_cap = cap;
    return p ? 0 : -1;
}

/* The body is in out[HEADROOM, out_len): write the head just in front of it and send. */
static void respond(struct conn *c, long status) {
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : ""; /* may be empty */
    char head[HEADROOM];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %03ld %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
                     status, reason, c->out_len - HEADROOM, c->close_after ? "close" : "keep-alive");
    c->out_off = HEADROOM - (size_t)n;
    memcpy(c->out + c->out_off, head, (size_t)n);
    flush(c);
}

/* A short answer of our own (client errors, upstream failures). */
static void respond_text(struct conn *c, long status, const char *text, int close_after) {
    size_t len = strlen(text);
    c->out_len = HEADROOM;
    if (reserve(c, len) < 0) { close_conn(c); return; }
    memcpy(c->out + HEADROOM, text, len);
    c->out_len += len;
    c->close_after |= close_after;
    respond(c, status);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    struct conn *c = arg;
    size_t len = size * n;
    if (c->out_len - HEADROOM + len > MAX_BODY || reserve(c, len) < 0) return 0; /* aborts: 502 */
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return len;
}

static CURL *take_easy(void) {
    if (n_free) return free_easy[--n_free];
    CURL *e = curl_easy_init(); /* options every transfer shares, set once per handle */
    if (!e) return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* no dot-segment removal: the path as sent */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    return e;
}

/* Case-insensitive "Name:" test on a header line. */
static int is_header(const char *line, const char *name) {
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* Parse the request at the start of `in`, if it is all there, and start its transfer. */
static void next_request(struct conn *c) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end && c->in_len == IN_SIZE) { respond_text(c, 431, "request head too large\n", 1); return; }
    if (!end) return; /* not all there yet */
    c->busy = 1;
    c->req_len = (size_t)(end - c->in) + 4;
    *end = 0; /* the head is now one string; every "\r\n" in it becomes the end of a line */
    char *line = c->in, *eol = strstr(line, "\r\n");
    if (eol) *eol = 0;
    char *method = line, *target = strchr(line, ' '), *version = target ? strchr(target + 1, ' ') : NULL;
    if (!version || target[1] != '/' || strncmp(version + 1, "HTTP/1.", 7) != 0)
        { respond_text(c, 400, "bad request line\n", 1); return; }
    *target++ = 0;
    *version++ = 0;
    c->close_after = strcmp(version, "HTTP/1.1") != 0;
    int n = 0, accept_seen = 0;
    for (line = eol ? eol + 2 : NULL; line && *line; line = eol ? eol + 2 : NULL) {
        if ((eol = strstr(line, "\r\n"))) *eol = 0;
        if (*line == ' ' || *line == '\t' || !strchr(line, ':')) /* obs-fold or no colon */
            { respond_text(c, 400, "bad header line\n", 1); return; }
        if (is_header(line, "Connection")) {
            if (strcasestr(line + 11, "close")) c->close_after = 1;
            continue;
        }
        if (is_header(line, "Keep-Alive")) continue;
        if (is_header(line, "Transfer-Encoding") ||
            (is_header(line, "Content-Length") && strtoul(line + 15, NULL, 10) != 0))
            { respond_text(c, 501, "request bodies are not forwarded\n", 1); return; }
        accept_seen |= is_header(line, "Accept");
        if (n == MAX_HEADERS) { respond_text(c, 431, "too many header lines\n", 1); return; }
        c->hdrs[n].data = line; /* curl only reads the list, while this request's bytes stay put */
        c->hdrs[n].next = &c->hdrs[n + 1];
        n++;
    }
    if (!accept_seen) c->hdrs[n++].data = (char *)"Accept:"; /* no curl default "Accept: * / *" */
    c->hdrs[n - 1].next = NULL;
    if (strcmp(method, "HEAD") == 0) { respond_text(c, 501, "HEAD is not forwarded\n", 1); return; }
    memcpy(url, origin, origin_len);
    strcpy(url + origin_len, target);
    if (!(c->easy = take_easy())) { respond_text(c, 502, "no easy handle\n", 1); return; }
    c->out_len = HEADROOM;
    if (reserve(c, 0) < 0) { close_conn(c); return; }
    curl_easy_setopt(c->easy, CURLOPT_URL, url); /* curl copies it */
    curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, &c->hdrs[0]);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_multi_add_handle(multi, c->easy); /* sets timeout_due: started after this batch */
}

/* Finished transfers: answer their clients. The CURLMsg dies with remove_handle, so copy it. */
static void drain_done(void) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode result = m->data.result;
        char *priv;
        long status = 502;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        struct conn *c = (struct conn *)priv;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(multi, e);
        c->easy = NULL;
        release_easy(e);
        if (result != CURLE_OK) respond_text(c, 502, "upstream failed\n", 0);
        else respond(c, status);
    }
}

/* libcurl asks to watch (or forget) one of its sockets: only libevent bookkeeping here. */
static void on_curl_socket(evutil_socket_t fd, short what, void *arg);
static int on_curl_watch(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)e, (void)userp, (void)socketp;
    short want = what == CURL_POLL_REMOVE ? 0 : (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
    if (s < 0 || s >= MAX_FD) return -1;
    if (watch_flags[s] == want) return 0;
    if (watch_flags[s]) event_del(watch_ev[s]);
    watch_flags[s] = want;
    if (!want) return 0;
    if (!watch_ev[s]) watch_ev[s] = event_new(base, s, want | EV_PERSIST, on_curl_socket, NULL);
    else event_assign(watch_ev[s], base, s, want | EV_PERSIST, on_curl_socket, NULL);
    return watch_ev[s] ? event_add(watch_ev[s], NULL) : -1;
}

/* libcurl wants to be called after timeout_ms: never from here, only flags and timers. */
static int on_curl_timer(CURLM *m, long timeout_ms, void *userp) {
    (void)m, (void)userp;
    evtimer_del(&timer);
    if (timeout_ms == 0) timeout_due = 1;
    else if (timeout_ms > 0) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(&timer, &tv);
    }
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    timeout_due = 1;
}

static void on_curl_socket(evutil_socket_t fd, short what, void *arg) {
    (void)arg;
    int running, mask = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(multi, fd, mask, &running);
    drain_done();
}

static void on_client_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    flush(arg);
}

static void on_client_read(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    struct conn *c = arg;
    if (c->in_len == IN_SIZE) { /* busy, buffer full: stop reading until the answer is out */
        event_del(&c->rev);
        c->paused = 1;
        return;
    }
    ssize_t n = recv(fd, c->in + c->in_len, IN_SIZE - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { close_conn(c); return; }
    c->in_len += (size_t)n;
    if (!c->busy) next_request(c);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
    (void)what, (void)arg;
    int fd, one = 1;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        struct conn *c = calloc(1, sizeof *c);
        if (!c) { close(fd); continue; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        event_assign(&c->rev, base, fd, EV_READ | EV_PERSIST, on_client_read, c);
        event_assign(&c->wev, base, fd, EV_WRITE | EV_PERSIST, on_client_write, c);
        event_add(&c->rev, NULL);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)sig, (void)what, (void)arg;
    stopping = 1;
}

int main(int argc, char **argv) {
    int port = argc == 3 ? atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535 || strncmp(argv[2], "http://", 7) != 0 || strlen(argv[2]) > 8000) {
        fprintf(stderr, "usage: %s PORT UPSTREAM_ORIGIN   (e.g. 8080 http://127.0.0.1:9000)\n", argv[0]);
        return 2;
    }
    origin = argv[2];
    origin_len = strlen(origin);
    while (origin_len && origin[origin_len - 1] == '/') origin_len--;
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0) {
        perror("curl_forwarder: listen");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    base = event_base_new();
    multi = curl_multi_init();
    if (!base || !multi) return 1;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_curl_watch);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    evtimer_assign(&timer, base, on_timer, NULL);
    struct event *listener = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    event_add(listener, NULL), event_add(sigint, NULL), event_add(sigterm, NULL);

    /* One batch of ready events, then at most the timeouts libcurl asked for meanwhile. */
    while (!stopping && event_base_loop(base, EVLOOP_ONCE) == 0) {
        while (timeout_due && !stopping) {
            int running;
            timeout_due = 0;
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
            drain_done();
        }
    }

    /* Open client connections are leaked on purpose (no list of them is kept): the process
     * exits. Everything else is freed. */
    while (n_free) curl_easy_cleanup(free_easy[--n_free]);
    curl_multi_cleanup(multi);
    for (int fd = 0; fd < MAX_FD; fd++) if (watch_ev[fd]) event_free(watch_ev[fd]);
    event_free(listener), event_free(sigint), event_free(sigterm), evtimer_del(&timer);
    event_base_free(base);
    close(lfd);
    curl_global_cleanup();
    return 0;
}
