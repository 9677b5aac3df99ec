/*
 * curl_floor: what libcurl alone costs per request on this machine, as gatehouse drives it
 * (one multi handle on one thread, curl_multi_poll, keep-alive connections, easy handles
 * reused without reset, response bodies discarded). No Swift, no server side: the CPU time
 * this process spends per completed GET is the least any libcurl-based proxy pays for its
 * upstream hop, before it has read a client request or written a response.
 *
 *   cc -O2 -o curl_floor bench/curl_floor.c -lcurl
 *   ./curl_floor URL [concurrency=64] [seconds=5] [header-file]
 *
 * header-file: request header lines, one per line, sent with every transfer through
 * CURLOPT_HTTPHEADER as gatehouse sends its upstream headers. libcurl 7.88 appends each such
 * line to the request through its own printf (`Curl_dyn_addf("%s\r\n")`), which copies one
 * byte per call: with a token, its claims header and the identity headers (1-2 KiB) that
 * is a cost per header byte no caller can avoid, so the floor has to include it.
 *
 * Prints: transfers, transfers/s, and user+system CPU µs per transfer (getrusage).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>

static size_t discard(char *ptr, size_t size, size_t n, void *userdata) {
    (void)ptr;
    (void)userdata;
    return size * n;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [concurrency] [seconds]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    int concurrency = argc > 2 ? atoi(argv[2]) : 64;
    double seconds = argc > 3 ? atof(argv[3]) : 5;
    struct curl_slist *headers = NULL;
    size_t header_bytes = 0;
    if (argc > 4) {
        FILE *file = fopen(argv[4], "r");
        if (file == NULL) {
            fprintf(stderr, "cannot read %s\n", argv[4]);
            return 2;
        }
        char line[65536];
        while (fgets(line, sizeof line, file)) {
            line[strcspn(line, "\r\n")] = 0;
            if (line[0] == 0) continue;
            headers = curl_slist_append(headers, line);
            header_bytes += strlen(line) + 2;
        }
        fclose(file);
    }
    if (concurrency < 1 || concurrency > 4096 || seconds <= 0) {
        fprintf(stderr, "bad concurrency or seconds\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)concurrency);
    CURL **handles = calloc((size_t)concurrency, sizeof(CURL *));
    for (int i = 0; i < concurrency; i++) {
        CURL *easy = curl_easy_init();
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);
        if (headers != NULL) curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
        handles[i] = easy;
        curl_multi_add_handle(multi, easy);
    }

    long transfers = 0;
    int warm = 1;
    double started = now(), cpu_started = cpu_seconds(), deadline = started + 1; /* 1 s warm-up */
    for (;;) {
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *message;
        int queued;
        while ((message = curl_multi_info_read(multi, &queued))) {
            if (message->msg != CURLMSG_DONE) continue;
            CURL *easy = message->easy_handle;
            if (message->data.result != CURLE_OK) {
                fprintf(stderr, "transfer failed: %s\n", curl_easy_strerror(message->data.result));
                return 1;
            }
            curl_multi_remove_handle(multi, easy);
            transfers++;
            curl_multi_add_handle(multi, easy); /* the same handle again: no reset, no setopt */
        }
        if (now() >= deadline) {
            if (!warm) break;
            warm = 0;
            transfers = 0;
            started = now();
            cpu_started = cpu_seconds();
            deadline = started + seconds;
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double wall = now() - started, cpu = cpu_seconds() - cpu_started;
    printf("curl_floor: %d concurrent, %.1f s, %zu header bytes: %ld transfers, %.0f transfers/s, %.1f CPU us per transfer\n",
           concurrency, wall, header_bytes, transfers, transfers / wall, cpu * 1e6 / (double)transfers);
    for (int i = 0; i < concurrency; i++) {
        curl_multi_remove_handle(multi, handles[i]);
        curl_easy_cleanup(handles[i]);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    free(handles);
    curl_global_cleanup();
    return 0;
}
