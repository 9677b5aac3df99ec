#ifndef GATEHOUSE_CEVENT_SHIM_H
#define GATEHOUSE_CEVENT_SHIM_H
// libevent 2.1 (Debian 12: libevent-dev), core part only: event_base, events, timers.
//
// Why the system headers come first: event2/event-config.h defines _GNU_SOURCE, which changes
// how glibc declares fd_set; included after it, Swift would see two different fd_set types
// (this module's and Glibc's) and refuse to build. Included first, there is one definition.
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdint.h>
#include <netdb.h>
#include <pthread.h>
#include <malloc.h>

#include <event2/event.h>

/// libevent's `evutil_socket_t` is a macro (`int` on Linux), which Swift does not import.
typedef int gh_socket_t;

// Two Linux calls glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not
// define: declared here under our own names, bound to the same symbols.
struct sockaddr;
extern int gh_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) __asm__("accept4");
extern int gh_sched_getaffinity(int pid, size_t size, void *mask) __asm__("sched_getaffinity");
extern int gh_pthread_setname_np(pthread_t thread, const char *name) __asm__("pthread_setname_np");

/// accept4's flags for a new connection: non-blocking, closed on exec.
static const int GH_ACCEPT_FLAGS = SOCK_NONBLOCK | SOCK_CLOEXEC;

// malloc_trim (HeapTrim): glibc's <malloc.h>, which Swift's Glibc module does not include; it
// comes in with the include above.

static const int GH_EFD_NONBLOCK = EFD_NONBLOCK;
static const int GH_EFD_CLOEXEC = EFD_CLOEXEC;
#endif
