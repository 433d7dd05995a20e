/*
 * The echo and uppercase load generator, in C: the same workload, options
 * and JSON report as ``loadgen.py echo|upper``, at a fraction of its cost
 * per line, so that the server under test, not this process, sets the pace.
 *
 * N connections each keep a window of 32-byte lines in flight: for every
 * line that comes back, one more goes out.  Lines returned per second are
 * counted over a measured window after a warm-up, with this process's CPU
 * time, the time it spent waiting in epoll, and the server's CPU time
 * (/proc/PID/stat).
 *
 * bench/run.py compiles it with the system's C compiler (``cc -O2``) into a
 * temporary directory and falls back to loadgen.py when it cannot; what it
 * shares with fanout_loadgen.c is in loadgen.h.
 *
 * Usage: echo_loadgen echo|upper --port PORT [--server-pid PID] [--cpu N]
 *        [--connections 100] [--window 64] [--duration 3] [--warmup 0.5]
 *        [--timeout 120]
 * Loopback (127.0.0.1) only.
 */

#include "loadgen.h"

static const char LINE[] = "abcdefghijklmnopqrstuvwxyz0123\r\n";
#define LINE_SIZE 32

static long count_newlines(const char *data, ssize_t size)
{
    long count = 0;
    const char *end = data + size;
    while ((data = memchr(data, '\n', (size_t)(end - data))) != NULL) {
        count++;
        data++;
    }
    return count;
}

static void send_lines(int fd, const char *payload, long lines)
{
    send_data(fd, payload, (size_t)lines * LINE_SIZE);
}

/* Connect, say one line and wait (bounded) for the expected answer. */
static int open_connection(int port, const char *expect, double deadline)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket: %s", strerror(errno));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    struct timeval limit = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0)
        fail("connecting to 127.0.0.1:%d: %s", port, strerror(errno));
    send_rest(fd, LINE, LINE_SIZE);
    char answer[LINE_SIZE];
    size_t got = 0;
    while (got < LINE_SIZE) {
        if (monotonic() > deadline)
            fail("time limit reached while opening echo connections");
        ssize_t size = recv(fd, answer + got, LINE_SIZE - got, 0);
        if (size <= 0)
            fail("the server closed an echo connection or did not answer");
        got += (size_t)size;
    }
    if (memcmp(answer, expect, LINE_SIZE) != 0)
        fail("unexpected answer from the server");
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "echo") != 0 && strcmp(argv[1], "upper") != 0)) {
        fprintf(stderr, "usage: echo_loadgen echo|upper --port PORT [options]\n");
        return 2;
    }
    workload = argv[1];
    int upper = strcmp(workload, "upper") == 0;
    int port = atoi(option(argc, argv, "--port", "0"));
    long server_pid = atol(option(argc, argv, "--server-pid", "0"));
    int cpu = atoi(option(argc, argv, "--cpu", "-1"));
    int connections = atoi(option(argc, argv, "--connections", "100"));
    long window = atol(option(argc, argv, "--window", "64"));
    double duration = atof(option(argc, argv, "--duration", "3"));
    double warmup = atof(option(argc, argv, "--warmup", "0.5"));
    double timeout = atof(option(argc, argv, "--timeout", "120"));
    if (port <= 0 || connections < 1 || window < 1)
        fail("--port, --connections and --window must be positive");

    set_up_process(cpu);

    char expect[LINE_SIZE];
    memcpy(expect, LINE, LINE_SIZE);
    if (upper)
        for (int i = 0; i < LINE_SIZE; i++)
            if (expect[i] >= 'a' && expect[i] <= 'z')
                expect[i] = (char)(expect[i] - 'a' + 'A');

    char *payload = malloc((size_t)window * LINE_SIZE);
    char *buffer = malloc(RECV_SIZE);
    int *fds = calloc((size_t)connections, sizeof *fds);
    if (payload == NULL || buffer == NULL || fds == NULL)
        fail("out of memory");
    for (long i = 0; i < window; i++)
        memcpy(payload + i * LINE_SIZE, LINE, LINE_SIZE);

    double deadline = monotonic() + timeout;
    int epoll = epoll_create1(0);
    for (int i = 0; i < connections; i++) {
        fds[i] = open_connection(port, expect, deadline);
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, fds[i], &event) != 0)
            fail("epoll_ctl: %s", strerror(errno));
    }
    for (int i = 0; i < connections; i++)
        send_lines(fds[i], payload, window);

    struct epoll_event events[1024];
    long total = 0, reads = 0, counted_from = 0, reads_from = 0;
    double idle = 0;
    struct window measure = {.server_pid = server_pid};
    double now = monotonic();
    double warm_end = now + warmup, end = warm_end + duration;
    int measuring = 0;
    for (;;) {
        if (!measuring && now >= warm_end) {
            window_start(&measure, now, idle);
            counted_from = total;
            reads_from = reads;
            measuring = 1;
        }
        if (now >= end)
            break;
        if (now > deadline)
            fail("time limit reached while measuring");
        int ready = epoll_wait(epoll, events, 1024, 50);
        double woke = monotonic();
        idle += woke - now;
        if (ready < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < ready; e++) {
            int fd = fds[events[e].data.u32];
            ssize_t size = recv(fd, buffer, RECV_SIZE, 0);
            if (size == 0)
                fail("the server closed echo connection #%u", events[e].data.u32);
            if (size < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                fail("recv: %s", strerror(errno));
            }
            reads++;
            long lines = count_newlines(buffer, size);
            total += lines;
            while (lines > 0) {
                long now_lines = lines < window ? lines : window;
                send_lines(fd, payload, now_lines);
                lines -= now_lines;
            }
        }
        now = monotonic();
    }
    window_stop(&measure, now, idle);
    long lines = total - counted_from;
    long measured_reads = reads - reads_from;
    printf("{\"workload\": \"%s\", \"value\": %.1f, \"unit\": \"lines/s\", "
           "\"lines\": %ld, \"connections\": %d, \"window\": %ld, "
           "\"lines_per_read\": %.1f, ",
           workload, (double)lines / measure.wall, lines, connections, window,
           (double)lines / (double)(measured_reads > 0 ? measured_reads : 1));
    window_json(&measure);
    printf(", \"loadgen\": \"c\"}\n");
    return 0;
}
