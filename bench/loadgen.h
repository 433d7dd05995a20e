/*
 * What the C load generators (echo_loadgen.c, fanout_loadgen.c, ws_loadgen.c)
 * share: the error report, clocks, the server's CPU time, sends that
 * finish, options, latency samples' clocks and percentiles, and the process
 * set-up (pinned to a core, open-file limit raised).
 * Each program sets ``workload``, the name its reports carry.
 */

#ifndef CHATSERVICE_LOADGEN_H
#define CHATSERVICE_LOADGEN_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_SIZE 262144
#define SATURATION 0.90

static const char *workload = "";

/* Write text into a JSON string (without its quotes), as json.dumps would
 * (non-ASCII bytes become U+FFFD). */
static void json_string(FILE *out, const char *text, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else if (c >= 0x80)
            fputs("\\ufffd", out);
        else
            fputc(c, out);
    }
}

/* Report an error as loadgen.py does (one JSON object) and exit. */
static void fail(const char *format, ...)
{
    char message[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    printf("{\"workload\": \"%s\", \"error\": \"", workload);
    json_string(stdout, message, strlen(message));
    printf("\"}\n");
    exit(1);
}

static double monotonic(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static double process_cpu(void)
{
    struct timespec now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* User plus system CPU seconds of a process (fields 14 and 15 of stat(5)). */
static double server_cpu(long pid)
{
    char path[64], buffer[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *stat = fopen(path, "r");
    if (stat == NULL)
        return -1;
    size_t size = fread(buffer, 1, sizeof buffer - 1, stat);
    fclose(stat);
    buffer[size] = '\0';
    char *field = strrchr(buffer, ')');
    if (field == NULL)
        return -1;
    unsigned long utime = 0, stime = 0;
    if (sscanf(field + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Slow path: the kernel took part of a write; finish it, bounded. */
static void send_rest(int fd, const char *data, size_t size)
{
    double deadline = monotonic() + 10;
    while (size > 0) {
        ssize_t sent = send(fd, data, size, MSG_NOSIGNAL);
        if (sent < 0 && errno != EAGAIN && errno != EINTR)
            fail("send: %s", strerror(errno));
        if (sent > 0) {
            data += sent;
            size -= (size_t)sent;
            continue;
        }
        if (monotonic() > deadline)
            fail("the server stopped reading for 10 s");
        struct pollfd one = {.fd = fd, .events = POLLOUT};
        poll(&one, 1, 10);
    }
}

static void send_data(int fd, const char *data, size_t size)
{
    ssize_t sent = send(fd, data, size, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EINTR)
            fail("send: %s", strerror(errno));
        sent = 0;
    }
    if ((size_t)sent != size)
        send_rest(fd, data + sent, size - (size_t)sent);
}

static const char *option(int argc, char **argv, const char *name, const char *fallback)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return fallback;
}

/* A measured window: wall time, this process's CPU time, the time it spent
 * waiting in epoll, and the server's CPU time (when its pid is known). */
struct window {
    long server_pid;
    double wall0, cpu0, server0, idle0;
    double wall, cpu_share, busy, server_share;
};

/* Start the window at ``now``, having waited ``idle`` seconds so far. */
static void window_start(struct window *w, double now, double idle)
{
    w->wall0 = now;
    w->cpu0 = process_cpu();
    w->server0 = w->server_pid ? server_cpu(w->server_pid) : -1;
    w->idle0 = idle;
}

static void window_stop(struct window *w, double now, double idle)
{
    w->wall = now - w->wall0;
    w->cpu_share = (process_cpu() - w->cpu0) / w->wall;
    w->busy = 1 - (idle - w->idle0) / w->wall;
    double server1 = w->server_pid ? server_cpu(w->server_pid) : -1;
    w->server_share = w->server0 >= 0 && server1 >= 0
                          ? (server1 - w->server0) / w->wall
                          : -1;
}

/* The window's figures, as loadgen.py's Window.report() (JSON members). */
static void window_json(const struct window *w)
{
    printf("\"wall_s\": %.4f, \"loadgen_cpu_pct\": %.1f, "
           "\"loadgen_busy_pct\": %.1f, \"server_cpu_pct\": ",
           w->wall, 100 * w->cpu_share, 100 * w->busy);
    if (w->server_share < 0)
        printf("null");
    else
        printf("%.1f", 100 * w->server_share);
    printf(", \"saturated\": %s",
           w->cpu_share >= SATURATION || w->busy >= SATURATION ? "true" : "false");
}

/* Latency: clocks in nanoseconds, and nearest-rank percentiles of sorted
 * samples (as loadgen.py's percentile). */
static inline long long clock_ns(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static inline long long realtime_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

/* CLOCK_REALTIME minus CLOCK_MONOTONIC, read as tightly as we can (the
 * closest of 100 tries), as loadgen.py's realtime_offset_ns: what turns the
 * kernel's SO_TIMESTAMPNS receive times into monotonic ones. */
static inline long long realtime_offset_ns(void)
{
    long long best_gap = -1, offset = 0;
    for (int i = 0; i < 100; i++) {
        long long before = clock_ns(CLOCK_MONOTONIC);
        long long real = realtime_ns();
        long long after = clock_ns(CLOCK_MONOTONIC);
        if (best_gap < 0 || after - before < best_gap) {
            best_gap = after - before;
            offset = real - (before + after) / 2;
        }
    }
    return offset;
}

/* The kernel's receive time (SO_TIMESTAMPNS, CLOCK_REALTIME) of what
 * recvmsg read into ``message``, or 0 when it has none. */
static inline long long kernel_stamp_ns(struct msghdr *message)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c; c = CMSG_NXTHDR(message, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
            struct timespec stamp;
            memcpy(&stamp, CMSG_DATA(c), sizeof stamp);
            return (long long)stamp.tv_sec * 1000000000LL + stamp.tv_nsec;
        }
    return 0;
}

static inline int by_value(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static inline double percentile_ms(const long long *values, size_t count, double fraction)
{
    if (count == 0)
        return 0;
    /* round(fraction * count + 0.5) - 1 as loadgen.py computes it: Python's
     * round() takes a half to the even neighbour. */
    double rank = fraction * (double)count + 0.5;
    long whole = (long)rank;
    double part = rank - (double)whole;
    if (part > 0.5 || (part == 0.5 && whole % 2 != 0))
        whole++;
    long index = whole - 1;
    if (index < 0)
        index = 0;
    if ((size_t)index >= count)
        index = (long)count - 1;
    return (double)values[index] / 1e6;
}

/* Pin this process to ``cpu`` (unless negative) and raise its open-file
 * limit to the hard limit. */
static void set_up_process(int cpu)
{
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
}

#endif
