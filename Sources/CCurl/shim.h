// Thin wrappers over libcurl for Swift.
//
// Why this file exists: curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are
// variadic, which Swift cannot call, and several constants are macros Swift does not
// import. Every function here is a one-line forward with a fixed argument type; no logic
// lives in C. Thread rules are those of libcurl: see GatehouseUpstream/CurlLoop.swift.
#ifndef GATEHOUSE_CCURL_SHIM_H
#define GATEHOUSE_CCURL_SHIM_H

#include <curl/curl.h>

static inline CURLcode gh_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode gh_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode gh_easy_setopt_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode gh_easy_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode gh_easy_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }

typedef size_t (*gh_data_callback)(char *buffer, size_t size, size_t nitems, void *userdata);
static inline CURLcode gh_easy_setopt_datacb(CURL *h, CURLoption o, gh_data_callback cb) { return curl_easy_setopt(h, o, cb); }

static inline CURLcode gh_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode gh_easy_getinfo_ptr(CURL *h, CURLINFO i, void **v) { return curl_easy_getinfo(h, i, v); }

static inline CURLMcode gh_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
static inline CURLMcode gh_multi_setopt_ptr(CURLM *m, CURLMoption o, void *v) { return curl_multi_setopt(m, o, v); }

// The multi_socket API's two callbacks (an event loop drives curl: GatehouseUpstream/UpstreamMulti.swift).
typedef int (*gh_socket_callback)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*gh_timer_callback)(CURLM *multi, long timeout_ms, void *userp);
static inline CURLMcode gh_multi_setopt_socketfunction(CURLM *m, gh_socket_callback cb) { return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, cb); }
static inline CURLMcode gh_multi_setopt_timerfunction(CURLM *m, gh_timer_callback cb) { return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, cb); }

/// The `CURLMsg.data.result` union member, which Swift does not import usefully.
static inline CURLcode gh_msg_result(CURLMsg *m) { return m->data.result; }

static const size_t GH_WRITEFUNC_PAUSE = CURL_WRITEFUNC_PAUSE;
static const size_t GH_READFUNC_PAUSE = CURL_READFUNC_PAUSE;
static const size_t GH_READFUNC_ABORT = CURL_READFUNC_ABORT;
static const int GH_PAUSE_CONT = CURLPAUSE_CONT;
static const long GH_GLOBAL_ALL = CURL_GLOBAL_ALL;
static const long GH_PIPE_NOTHING = CURLPIPE_NOTHING;

#endif
