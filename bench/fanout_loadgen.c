/*
 * The fan-out load generator, in C: the same workload, options, checks and
 * JSON report as ``loadgen.py fanout``, at a fraction of its cost per
 * delivery, so that the server under test, not this process, sets the pace.
 *
 * One chat room: R receivers (nicknames rNNNNN) and S senders (sNNNNN),
 * each sender keeping a window of numbered messages in flight (it sends one
 * more whenever one of its own comes back).  Senders are served as soon as
 * they are readable; receivers are read in passes, every
 * --receiver-interval seconds.  Every delivery a receiver reads is checked
 * by its sender and sequence number, as loadgen.FanoutCheck does: the number
 * expected next is counted once; a lower one is a duplicate, a higher one is
 * out of order (and counted, the ones between skipped); a complete line that
 * is no delivery is unexpected (the first 5 quoted).  A final drain checks
 * that every receiver got every message.
 *
 * bench/run.py compiles it with the system's C compiler (``cc -O2``) into a
 * temporary directory and falls back to loadgen.py when it cannot; what it
 * shares with echo_loadgen.c is in loadgen.h.
 *
 * Usage: fanout_loadgen fanout --port PORT [--second-port PORT] [--server-pid PID] [--cpu N]
 *        [--receivers 1000] [--senders 10] [--window 64]
 *        [--receiver-interval 0.005] [--duration 3] [--warmup 0.5]
 *        [--drain-timeout 10] [--timeout 120]
 * Loopback (127.0.0.1) only.
 */

#include "loadgen.h"

/* How many unexpected lines a run quotes, and how much of each. */
#define SAMPLE_LINES 5
#define SAMPLE_SIZE 200
/* Longest incomplete line kept between reads (a delivery is 62 bytes). */
#define CARRY_SIZE 512
/* Connections being set up at once (the server's listen backlog stays short). */
#define CONCURRENCY 40

static const char REGISTERED[] = "--- you are ";
static const char ERROR_LINE[] = "!!! ";
/* A delivery: "#lobby <sNNNNN> FNNNNNNNN fan-out 0123456789abcdef" [\r]. */
static const char PREFIX[] = "#lobby <s";
static const char TEXT[] = " fan-out 0123456789abcdef";
#define PREFIX_SIZE (sizeof PREFIX - 1)
#define TEXT_SIZE (sizeof TEXT - 1)
/* What a sender says: "FNNNNNNNN fan-out 0123456789abcdef\r\n". */
#define MESSAGE_SIZE (1 + 8 + TEXT_SIZE + 2)

/* epoll_wait's timeout for a wait of ``seconds`` (rounded up, as Python). */
static int wait_ms(double seconds)
{
    if (seconds <= 0)
        return 0;
    int ms = (int)(seconds * 1000);
    return ms < seconds * 1000 ? ms + 1 : ms;
}

/* One connection: its socket, and the incomplete line it last read. */
struct conn {
    int fd;
    int connected;
    int ready;
    size_t carry_size;
    char carry[CARRY_SIZE];
};

static struct conn *conns;
static int count_r, count_s, total;
static double deadline;
static char *buffer;

static void remaining(const char *what, int left)
{
    if (monotonic() > deadline)
        fail("time limit reached while %s (%d still waiting)", what, left);
}

static ssize_t receive(int i, const char *what)
{
    ssize_t size = recv(conns[i].fd, buffer + CARRY_SIZE, RECV_SIZE, 0);
    if (size == 0)
        fail("the server closed %s #%d", what, i < count_r ? i : i - count_r);
    if (size < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return -1;
        fail("%s #%d: %s", what, i < count_r ? i : i - count_r, strerror(errno));
    }
    return size;
}

/* Keep the last ``keep`` bytes of what a connection read (for a marker cut
 * across reads). */
static void keep_tail(struct conn *conn, const char *data, size_t size, size_t keep)
{
    if (keep > CARRY_SIZE)
        keep = CARRY_SIZE;
    if (size > keep) {
        data += size - keep;
        size = keep;
    }
    memmove(conn->carry, data, size);
    conn->carry_size = size;
}

/* The data read by ``i``, after what it carried: in ``buffer``. */
static char *joined(int i, ssize_t size, size_t *joined_size)
{
    struct conn *conn = &conns[i];
    char *start = buffer + CARRY_SIZE - conn->carry_size;
    memcpy(start, conn->carry, conn->carry_size);
    *joined_size = conn->carry_size + (size_t)size;
    return start;
}

/* Open every connection, CONCURRENCY at a time; each sends its nickname and
 * is ready once the server confirmed it; the ready ones are drained.  With
 * a second node of the same chat (second_port > 0, --redis), every other
 * receiver connects there. */
static void open_all(int epoll, int port, int second_port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    struct sockaddr_in second = address;
    second.sin_port = htons(second_port);
    int next = 0, in_setup = 0, ready = 0;
    struct epoll_event events[1024];
    while (ready < total) {
        remaining("opening chat connections", total - ready);
        while (in_setup < CONCURRENCY && next < total) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0)
                fail("socket: %s", strerror(errno));
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            struct sockaddr_in *to =
                second_port > 0 && next < count_r && next % 2 ? &second : &address;
            if (connect(fd, (struct sockaddr *)to, sizeof *to) != 0 &&
                errno != EINPROGRESS)
                fail("connecting to 127.0.0.1:%d: %s", port, strerror(errno));
            conns[next].fd = fd;
            struct epoll_event event = {.events = EPOLLIN | EPOLLOUT,
                                        .data.u32 = (uint32_t)next};
            if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0)
                fail("epoll_ctl: %s", strerror(errno));
            next++;
            in_setup++;
        }
        int got = epoll_wait(epoll, events, 1024, 50);
        if (got < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < got; e++) {
            int i = (int)events[e].data.u32;
            struct conn *conn = &conns[i];
            const char *what = i < count_r ? "receivers" : "senders";
            if (!conn->connected) {
                if (!(events[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                    continue;
                int error = 0;
                socklen_t length = sizeof error;
                getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &error, &length);
                if (error)
                    fail("connecting to 127.0.0.1:%d: %s", port, strerror(error));
                conn->connected = 1;
                struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                epoll_ctl(epoll, EPOLL_CTL_MOD, conn->fd, &event);
                char hello[32];
                int size = snprintf(hello, sizeof hello, "%c%05d\r\n",
                                    i < count_r ? 'r' : 's',
                                    i < count_r ? i : i - count_r);
                send_data(conn->fd, hello, (size_t)size);
                continue;
            }
            ssize_t size = receive(i, what);
            if (size < 0 || conn->ready)
                continue;
            size_t length;
            char *data = joined(i, size, &length);
            char *error;
            if (memmem(data, length, REGISTERED, sizeof REGISTERED - 1) != NULL) {
                conn->ready = 1;
                conn->carry_size = 0;
                ready++;
                in_setup--;
            } else if ((error = memmem(data, length, ERROR_LINE,
                                       sizeof ERROR_LINE - 1)) != NULL) {
                size_t quoted = (size_t)(data + length - error);
                char *end = memchr(error, '\n', quoted);
                if (end != NULL)
                    quoted = (size_t)(end - error);
                fail("the server refused %s #%d: %.*s", what,
                     i < count_r ? i : i - count_r, (int)(quoted > 200 ? 200 : quoted),
                     error);
            } else {
                keep_tail(conn, data, length, CARRY_SIZE);
            }
        }
    }
}

/* Sender 0 says a unique line in the room; wait until every member read it:
 * whatever the server queued before (join notices...) has then been read. */
static void barrier(int epoll)
{
    char marker[64];
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long token = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    int size = snprintf(marker, sizeof marker, "SYNC%lld\r\n", token);
    send_data(conns[count_r].fd, marker, (size_t)size);
    snprintf(marker, sizeof marker, " SYNC%lld\r\n", token);
    size_t marker_size = strlen(marker);
    for (int i = 0; i < total; i++) {
        conns[i].ready = 0;
        conns[i].carry_size = 0;
    }
    int left = total;
    struct epoll_event events[1024];
    while (left) {
        remaining("waiting for the room to settle", left);
        int got = epoll_wait(epoll, events, 1024, 50);
        if (got < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < got; e++) {
            int i = (int)events[e].data.u32;
            ssize_t read = receive(i, "connection");
            if (read < 0 || conns[i].ready)
                continue;
            size_t length;
            char *data = joined(i, read, &length);
            if (memmem(data, length, marker, marker_size) != NULL) {
                conns[i].ready = 1;
                conns[i].carry_size = 0;
                left--;
            } else {
                keep_tail(&conns[i], data, length, marker_size - 1);
            }
        }
    }
    for (int i = 0; i < total; i++)
        conns[i].carry_size = 0;
}

/* The checks (loadgen.FanoutCheck). */
static long *expected; /* [receiver * count_s + sender]: the number next */
static long long delivered, duplicates, out_of_order, unexpected;
static char samples[SAMPLE_LINES][SAMPLE_SIZE];
static size_t sample_sizes[SAMPLE_LINES];
static int sample_count;

static int digits(const char *text, int count, long *value)
{
    long found = 0;
    for (int i = 0; i < count; i++) {
        if (text[i] < '0' || text[i] > '9')
            return 0;
        found = found * 10 + (text[i] - '0');
    }
    *value = found;
    return 1;
}

/* One complete line (without its \n): a delivery, or unexpected. */
static void check_line(int receiver, const char *line, size_t size)
{
    long sender, number;
    size_t body = size;
    if (body > 0 && line[body - 1] == '\r')
        body--;
    if (body == PREFIX_SIZE + 5 + 3 + 8 + TEXT_SIZE &&
        memcmp(line, PREFIX, PREFIX_SIZE) == 0 &&
        digits(line + PREFIX_SIZE, 5, &sender) &&
        memcmp(line + PREFIX_SIZE + 5, "> F", 3) == 0 &&
        digits(line + PREFIX_SIZE + 8, 8, &number) &&
        memcmp(line + PREFIX_SIZE + 16, TEXT, TEXT_SIZE) == 0 && sender < count_s) {
        long *want = &expected[(size_t)receiver * (size_t)count_s + (size_t)sender];
        if (number == *want) {
            *want = number + 1;
            delivered++;
        } else if (number < *want) {
            duplicates++;
        } else {
            out_of_order++;
            *want = number + 1;
            delivered++;
        }
        return;
    }
    unexpected++;
    if (sample_count < SAMPLE_LINES) {
        size_t quoted = size < SAMPLE_SIZE ? size : SAMPLE_SIZE;
        while (quoted > 0 && line[quoted - 1] == '\r')
            quoted--;
        memcpy(samples[sample_count], line, quoted);
        sample_sizes[sample_count++] = quoted;
    }
}

/* Count the complete lines of what ``receiver`` read (``size`` bytes in
 * ``buffer``); keep the incomplete one for the next read.  An incomplete
 * line longer than CARRY_SIZE is no delivery: its start is kept, marked
 * as too long, and it is counted unexpected once complete. */
static int *overlong;

static void take(int receiver, ssize_t size)
{
    size_t length;
    char *data = joined(receiver, size, &length);
    char *end = data + length;
    char *line = data;
    char *newline;
    while ((newline = memchr(line, '\n', (size_t)(end - line))) != NULL) {
        if (overlong[receiver] && line == data) {
            overlong[receiver] = 0;
            unexpected++;
            if (sample_count < SAMPLE_LINES) {
                size_t quoted = CARRY_SIZE < SAMPLE_SIZE ? CARRY_SIZE : SAMPLE_SIZE;
                memcpy(samples[sample_count], line, quoted);
                sample_sizes[sample_count++] = quoted;
            }
        } else {
            check_line(receiver, line, (size_t)(newline - line));
        }
        line = newline + 1;
    }
    size_t rest = (size_t)(end - line);
    struct conn *conn = &conns[receiver];
    if (rest > CARRY_SIZE) {
        /* The same start when it was already too long: data begins with it. */
        memmove(conn->carry, line, CARRY_SIZE);
        conn->carry_size = CARRY_SIZE;
        overlong[receiver] = 1;
    } else {
        memmove(conn->carry, line, rest);
        conn->carry_size = rest;
    }
}

static int complete(int receiver, const long *sent)
{
    const long *row = &expected[(size_t)receiver * (size_t)count_s];
    for (int s = 0; s < count_s; s++)
        if (row[s] < sent[s])
            return 0;
    return 1;
}

static long long missing(const long *sent)
{
    long long count = 0;
    for (int r = 0; r < count_r; r++)
        for (int s = 0; s < count_s; s++) {
            long got = expected[(size_t)r * (size_t)count_s + (size_t)s];
            if (sent[s] > got)
                count += sent[s] - got;
        }
    return count;
}

/* Senders: each one's next sequence number, and the payload it sends. */
static long *sent;
static char *payload;
static size_t payload_room;

static void say(int sender, long count)
{
    size_t size = (size_t)count * MESSAGE_SIZE;
    if (size > payload_room) {
        payload_room = size * 2;
        payload = realloc(payload, payload_room);
        if (payload == NULL)
            fail("out of memory");
    }
    char *at = payload;
    for (long number = sent[sender]; number < sent[sender] + count; number++) {
        *at++ = 'F';
        long rest = number;
        for (int d = 7; d >= 0; d--) {
            at[d] = (char)('0' + rest % 10);
            rest /= 10;
        }
        at += 8;
        memcpy(at, TEXT, TEXT_SIZE);
        at += TEXT_SIZE;
        *at++ = '\r';
        *at++ = '\n';
    }
    send_data(conns[count_r + sender].fd, payload, size);
    sent[sender] += count;
}

/* The sender's own messages among the complete lines it read. */
static long own_messages(int i, ssize_t size)
{
    size_t length;
    char *data = joined(i, size, &length);
    char *cut = data + length;
    while (cut > data && cut[-1] != '\n')
        cut--;
    char marker[16];
    int marker_size = snprintf(marker, sizeof marker, "<s%05d> ", i - count_r);
    long own = 0;
    char *at = data;
    while (at < cut &&
           (at = memmem(at, (size_t)(cut - at), marker, (size_t)marker_size)) != NULL) {
        own++;
        at += marker_size;
    }
    keep_tail(&conns[i], cut, (size_t)(data + length - cut), CARRY_SIZE);
    return own;
}

int main(int argc, char **argv)
{
    workload = "fanout";
    if (argc < 2 || strcmp(argv[1], "fanout") != 0) {
        fprintf(stderr, "usage: fanout_loadgen fanout --port PORT [options]\n");
        return 2;
    }
    int port = atoi(option(argc, argv, "--port", "0"));
    int second_port = atoi(option(argc, argv, "--second-port", "0"));
    long server_pid = atol(option(argc, argv, "--server-pid", "0"));
    int cpu = atoi(option(argc, argv, "--cpu", "-1"));
    count_r = atoi(option(argc, argv, "--receivers", "1000"));
    count_s = atoi(option(argc, argv, "--senders", "10"));
    long window = atol(option(argc, argv, "--window", "64"));
    double interval = atof(option(argc, argv, "--receiver-interval", "0.005"));
    double duration = atof(option(argc, argv, "--duration", "3"));
    double warmup = atof(option(argc, argv, "--warmup", "0.5"));
    double drain_timeout = atof(option(argc, argv, "--drain-timeout", "10"));
    double timeout = atof(option(argc, argv, "--timeout", "120"));
    if (port <= 0 || window < 1 || count_r < 1 || count_s < 1)
        fail("--port, --window, --receivers and --senders must be positive");
    if (count_s > 100000)
        fail("at most 100000 senders (five digits)");

    set_up_process(cpu);
    char cpus[4096] = "null";
    cpu_set_t mine;
    if (sched_getaffinity(0, sizeof mine, &mine) == 0) {
        size_t at = 0;
        cpus[at++] = '[';
        for (int c = 0; c < CPU_SETSIZE && at + 16 < sizeof cpus; c++)
            if (CPU_ISSET(c, &mine))
                at += (size_t)snprintf(cpus + at, sizeof cpus - at, "%s%d",
                                       at > 1 ? ", " : "", c);
        cpus[at++] = ']';
        cpus[at] = '\0';
    }
    struct rlimit files = {0};
    getrlimit(RLIMIT_NOFILE, &files);

    total = count_r + count_s;
    conns = calloc((size_t)total, sizeof *conns);
    buffer = malloc(CARRY_SIZE + RECV_SIZE);
    expected = calloc((size_t)count_r * (size_t)count_s, sizeof *expected);
    overlong = calloc((size_t)count_r, sizeof *overlong);
    sent = calloc((size_t)count_s, sizeof *sent);
    struct epoll_event *events = calloc((size_t)total, sizeof *events);
    if (!conns || !buffer || !expected || !overlong || !sent || !events)
        fail("out of memory");

    deadline = monotonic() + timeout;
    int receiver_epoll = epoll_create1(0);
    int sender_epoll = epoll_create1(0);
    open_all(receiver_epoll, port, second_port);
    barrier(receiver_epoll);
    for (int i = count_r; i < total; i++) {
        epoll_ctl(receiver_epoll, EPOLL_CTL_DEL, conns[i].fd, NULL);
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(sender_epoll, EPOLL_CTL_ADD, conns[i].fd, &event) != 0)
            fail("epoll_ctl: %s", strerror(errno));
    }
    for (int s = 0; s < count_s; s++)
        say(s, window);

    long long counted_from = 0;
    double idle = 0;
    struct window measure = {.server_pid = server_pid};
    double now = monotonic();
    double warm_end = now + warmup, end = warm_end + duration;
    double next_pass = now;
    int measuring = 0;
    for (;;) {
        if (!measuring && now >= warm_end) {
            window_start(&measure, now, idle);
            counted_from = delivered;
            measuring = 1;
        }
        if (now >= end)
            break;
        if (now > deadline)
            fail("time limit reached while measuring");
        if (now >= next_pass) {
            next_pass = now + interval;
            int got = epoll_wait(receiver_epoll, events, total, 0);
            if (got < 0 && errno != EINTR)
                fail("epoll_wait: %s", strerror(errno));
            for (int e = 0; e < got; e++) {
                int i = (int)events[e].data.u32;
                ssize_t size = receive(i, "receiver");
                if (size >= 0)
                    take(i, size);
            }
            now = monotonic();
        }
        double wait = next_pass - now < 0.05 ? next_pass - now : 0.05;
        int got = epoll_wait(sender_epoll, events, total, wait_ms(wait));
        double woke = monotonic();
        idle += woke - now;
        if (got < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < got; e++) {
            int i = (int)events[e].data.u32;
            ssize_t size = receive(i, "sender");
            if (size < 0)
                continue;
            long own = own_messages(i, size);
            if (own)
                say(i - count_r, own);
        }
        now = monotonic();
    }
    for (int i = count_r; i < total; i++) {
        epoll_ctl(sender_epoll, EPOLL_CTL_DEL, conns[i].fd, NULL);
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(receiver_epoll, EPOLL_CTL_ADD, conns[i].fd, &event);
    }
    window_stop(&measure, now, idle);
    long long deliveries = delivered - counted_from;
    long long messages = 0;
    for (int s = 0; s < count_s; s++)
        messages += sent[s];

    /* Drain: every receiver must get every message, bounded in time. */
    double drain_deadline = monotonic() + drain_timeout;
    int behind = 0;
    char *late = calloc((size_t)count_r, 1);
    if (late == NULL)
        fail("out of memory");
    for (int r = 0; r < count_r; r++)
        if (!complete(r, sent)) {
            late[r] = 1;
            behind++;
        }
    while (behind && monotonic() < drain_deadline) {
        int got = epoll_wait(receiver_epoll, events, total, 50);
        if (got < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < got; e++) {
            int i = (int)events[e].data.u32;
            ssize_t size = receive(i, "connection");
            if (size < 0 || i >= count_r)
                continue;
            take(i, size);
            if (late[i] && complete(i, sent)) {
                late[i] = 0;
                behind--;
            }
        }
    }

    printf("{\"workload\": \"fanout\", \"cpus\": %s, \"fd_limit\": %llu, "
           "\"value\": %.1f, \"unit\": \"deliveries/s\", \"deliveries\": %lld, "
           "\"messages_sent\": %lld, \"receivers\": %d, \"senders\": %d, "
           "\"window\": %ld, \"receiver_interval\": %g, \"lost\": %lld, "
           "\"duplicates\": %lld, \"out_of_order\": %lld, "
           "\"unexpected_lines\": %lld, \"unexpected_sample\": [",
           cpus, (unsigned long long)files.rlim_cur, (double)deliveries / measure.wall,
           deliveries, messages, count_r, count_s, window, interval, missing(sent),
           duplicates, out_of_order, unexpected);
    for (int i = 0; i < sample_count; i++) {
        printf("%s\"", i ? ", " : "");
        json_string(stdout, samples[i], sample_sizes[i]);
        printf("\"");
    }
    printf("], \"drained\": %s, ", behind ? "false" : "true");
    window_json(&measure);
    printf(", \"loadgen\": \"c\"}\n");
    return 0;
}
