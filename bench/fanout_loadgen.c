/*
 * The fan-out and latency load generator, in C: the same workloads,
 * options, checks and JSON reports as ``loadgen.py fanout`` and
 * ``loadgen.py latency``, at a fraction of their cost per delivery, so that
 * the server under test, not this process, sets the pace (and, for latency,
 * sends are evenly paced rather than bunched after long passes of reads).
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
 * With ``--protocol irc`` the same workload runs over IRC (chatservice's
 * IRC door, InspIRCd, ngIRCd): each client registers with NICK and USER,
 * joins #lobby once welcomed (001) and is ready at the end of NAMES (366);
 * senders say ``PRIVMSG #lobby :FNNNNNNNN fan-out ...`` and a delivery is
 * the line ``:sNNNNN!user@host PRIVMSG #lobby :FNNNNNNNN fan-out ...``.
 * IRC does not echo a sender's own message (without the echo-message
 * capability, which not every server has), so the window is kept by
 * receiver 0 instead (``--pace receiver``, the default over IRC; native
 * runs may ask for it too, to compare like with like): receiver 0 is read
 * as soon as it is readable, as senders are, and each delivery it reads
 * lets its sender send one more.
 *
 * latency (natively or over IRC): the same clients, set up and settled
 * alike; S senders send --rate messages/s in all, in turn, evenly paced
 * (after a stall of over 0.1 s the missed sends are skipped, not burst),
 * each "T<CLOCK_MONOTONIC ns> " and padding; receivers are read as soon as
 * they are readable, with recvmsg and SO_TIMESTAMPNS: the delay until the
 * kernel put a line in the socket (its CLOCK_REALTIME stamp less an offset
 * measured at the start) and until it was read.  Lines sent in the warm-up
 * are not measured; nearest-rank percentiles.
 *
 * bench/run.py compiles it with the system's C compiler (``cc -O2``) into a
 * temporary directory and falls back to loadgen.py when it cannot (not for
 * fan-out over IRC: loadgen.py's fan-out speaks the native protocol only);
 * its clients' set-up is in chat_clients.h, what it shares with the other C
 * load generators in loadgen.h.
 *
 * Usage: fanout_loadgen fanout|latency --port PORT [--second-port PORT]
 *        [--server-pid PID] [--cpu N]
 *        [--protocol native|irc] [--pace sender|receiver] [--concurrency 40]
 *        [--receivers 1000] [--senders 10] [--window 64] [--rate 200]
 *        [--receiver-interval 0.005] [--duration 3] [--warmup 0.5]
 *        [--drain-timeout 10] [--timeout 120]
 * Loopback (127.0.0.1) only.
 */

#include "chat_clients.h"

/* How many unexpected lines a run quotes, and how much of each. */
#define SAMPLE_LINES 5
#define SAMPLE_SIZE 200
/* A delivery: "#lobby <sNNNNN> FNNNNNNNN fan-out 0123456789abcdef" [\r]. */
static const char PREFIX[] = "#lobby <s";
static const char TEXT[] = " fan-out 0123456789abcdef";
#define PREFIX_SIZE (sizeof PREFIX - 1)
#define TEXT_SIZE (sizeof TEXT - 1)
/* What a sender says: "FNNNNNNNN fan-out 0123456789abcdef\r\n" (after
 * SAY_IRC over IRC). */
#define MESSAGE_SIZE (1 + 8 + TEXT_SIZE + 2)

/* Whether receiver 0 keeps the senders' windows (--pace receiver). */
static int paced_by_receiver;
/* IRC: what a delivery has after its prefix (":sNNNNN!user@host"). */
static const char IRC_DELIVERY[] = " PRIVMSG #lobby :F";
#define IRC_DELIVERY_SIZE (sizeof IRC_DELIVERY - 1)

/* The checks (loadgen.FanoutCheck). */
static long *expected; /* [receiver * count_s + sender]: the number next */
/* IRC: messages each sender may send, from what receiver 0 read. */
static long *credit;
static long long delivered, duplicates, out_of_order, unexpected;
static char samples[SAMPLE_LINES][SAMPLE_SIZE];
static size_t sample_sizes[SAMPLE_LINES];
static int sample_count;

/* Count one delivery of ``sender``'s message ``number`` to ``receiver``. */
static void count_delivery(int receiver, long sender, long number)
{
    long *want = &expected[(size_t)receiver * (size_t)count_s + (size_t)sender];
    if (number == *want) {
        *want = number + 1;
        delivered++;
    } else if (number < *want) {
        duplicates++;
        return;
    } else {
        out_of_order++;
        *want = number + 1;
        delivered++;
    }
    if (paced_by_receiver && receiver == 0)
        credit[sender]++;
}

/* An IRC delivery: ":sNNNNN!user@host PRIVMSG #lobby :FNNNNNNNN fan-out ..."
 * (``body`` bytes, without the line end); whether it is one, counted. */
static int irc_delivery(int receiver, const char *line, size_t body)
{
    long sender, number;
    if (body < 8 || memcmp(line, ":s", 2) != 0 || !digits(line + 2, 5, &sender) ||
        line[7] != '!' || sender >= count_s)
        return 0;
    const char *space = memchr(line, ' ', body);
    if (space == NULL)
        return 0;
    size_t rest = body - (size_t)(space - line);
    if (rest != IRC_DELIVERY_SIZE + 8 + TEXT_SIZE ||
        memcmp(space, IRC_DELIVERY, IRC_DELIVERY_SIZE) != 0 ||
        !digits(space + IRC_DELIVERY_SIZE, 8, &number) ||
        memcmp(space + IRC_DELIVERY_SIZE + 8, TEXT, TEXT_SIZE) != 0)
        return 0;
    count_delivery(receiver, sender, number);
    return 1;
}

/* One complete line (without its \n): a delivery, or unexpected. */
static void check_line(int receiver, const char *line, size_t size)
{
    long sender, number;
    size_t body = size;
    if (body > 0 && line[body - 1] == '\r')
        body--;
    if (irc) {
        if (irc_delivery(receiver, line, body))
            return;
    } else if (body == PREFIX_SIZE + 5 + 3 + 8 + TEXT_SIZE &&
        memcmp(line, PREFIX, PREFIX_SIZE) == 0 &&
        digits(line + PREFIX_SIZE, 5, &sender) &&
        memcmp(line + PREFIX_SIZE + 5, "> F", 3) == 0 &&
        digits(line + PREFIX_SIZE + 8, 8, &number) &&
        memcmp(line + PREFIX_SIZE + 16, TEXT, TEXT_SIZE) == 0 && sender < count_s) {
        count_delivery(receiver, sender, number);
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
    size_t each = MESSAGE_SIZE + (irc ? SAY_IRC_SIZE : 0);
    size_t size = (size_t)count * each;
    if (size > payload_room) {
        payload_room = size * 2;
        payload = realloc(payload, payload_room);
        if (payload == NULL)
            fail("out of memory");
    }
    char *at = payload;
    for (long number = sent[sender]; number < sent[sender] + count; number++) {
        if (irc) {
            memcpy(at, SAY_IRC, SAY_IRC_SIZE);
            at += SAY_IRC_SIZE;
        }
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

/* The latency mode (``latency``), as loadgen.py latency: S senders send
 * --rate messages/s in all, in turn, evenly paced, each line stamped with
 * CLOCK_MONOTONIC ("T<ns> " and padding); receivers are read as soon as they
 * are readable, with recvmsg: the delay until the kernel put a line in the
 * receiver's socket (SO_TIMESTAMPNS, CLOCK_REALTIME less the offset
 * measured at the start) and until this process read it.  Lines sent in
 * the warm-up are not measured. */
struct samples {
    long long *values;
    size_t count, room;
};

static void add_sample(struct samples *samples, long long value)
{
    if (samples->count == samples->room) {
        samples->room = samples->room ? samples->room * 2 : 65536;
        samples->values = realloc(samples->values, samples->room * sizeof *samples->values);
        if (samples->values == NULL)
            fail("out of memory");
    }
    samples->values[samples->count++] = value;
}

static struct samples at_read, in_socket;
/* Stamped lines each receiver read. */
static long long *got;
static long long warm_end_ns, realtime_offset;
static const char PADDING[] = " xxxxxxxxxxxxxxxx\r\n";

/* Read what ``i`` has: a sender's is dropped, a receiver's stamps counted. */
static void receive_stamped(int i)
{
    if (i >= count_r) {
        receive(i, "sender");
        return;
    }
    char control[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec vector = {.iov_base = buffer + CARRY_SIZE, .iov_len = RECV_SIZE};
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1,
                             .msg_control = control, .msg_controllen = sizeof control};
    ssize_t size = recvmsg(conns[i].fd, &message, 0);
    long long read_at = clock_ns(CLOCK_MONOTONIC);
    if (size == 0)
        fail("the server closed receiver #%d", i);
    if (size < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        fail("receiver #%d: %s", i, strerror(errno));
    }
    long long kernel_at = kernel_stamp_ns(&message);
    if (kernel_at)
        kernel_at -= realtime_offset;
    size_t length;
    char *data = joined(i, size, &length);
    char *cut = data + length;
    while (cut > data && cut[-1] != '\n')
        cut--;
    /* "#lobby <s00000> T<ns> xxx\r\n", over IRC "... PRIVMSG #lobby :T<ns> xxx". */
    const char *marker = irc ? " :T" : "> T";
    char *at = data;
    while (at < cut && (at = memmem(at, (size_t)(cut - at), marker, 3)) != NULL) {
        at += 3;
        long long sent_at = 0;
        char *digit = at;
        while (digit < cut && *digit >= '0' && *digit <= '9')
            sent_at = sent_at * 10 + (*digit++ - '0');
        if (digit == at || digit >= cut || *digit != ' ')
            continue;
        at = digit;
        got[i]++;
        if (sent_at >= warm_end_ns) {
            add_sample(&at_read, read_at - sent_at);
            if (kernel_at)
                add_sample(&in_socket, kernel_at - sent_at);
        }
    }
    keep_tail(&conns[i], cut, (size_t)(data + length - cut), CARRY_SIZE);
}

static void serve_stamped(int epoll, struct epoll_event *events, int wait, double *idle)
{
    double before = monotonic();
    int ready = epoll_wait(epoll, events, total, wait);
    *idle += monotonic() - before;
    if (ready < 0 && errno != EINTR)
        fail("epoll_wait: %s", strerror(errno));
    for (int e = 0; e < ready; e++)
        receive_stamped((int)events[e].data.u32);
}

static int run_latency(int epoll, long server_pid, double rate, double warmup,
                       double duration, double drain_timeout, const char *cpus,
                       unsigned long long fd_limit)
{
    int kernel_stamps = 1;
    for (int i = 0; i < count_r; i++) {
        int one = 1;
        if (setsockopt(conns[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)
            kernel_stamps = 0;
    }
    realtime_offset = realtime_offset_ns();
    got = calloc((size_t)count_r, sizeof *got);
    struct epoll_event *events = calloc((size_t)total, sizeof *events);
    if (got == NULL || events == NULL)
        fail("out of memory");
    const char *say_text = irc ? SAY_IRC : "";
    double interval = 1.0 / rate, idle = 0;
    struct window measure = {.server_pid = server_pid};
    double now = monotonic();
    double warm_end = now + warmup, end = warm_end + duration, next_send = now;
    warm_end_ns = (long long)(warm_end * 1e9);
    long long messages = 0, measured_from = 0;
    int measuring = 0;
    for (;;) {
        if (!measuring && now >= warm_end) {
            window_start(&measure, now, idle);
            measured_from = messages;
            measuring = 1;
        }
        if (now >= end)
            break;
        if (now > deadline)
            fail("time limit reached while measuring");
        while (now >= next_send) {
            char line[128];
            int size = snprintf(line, sizeof line, "%sT%lld%s", say_text,
                                clock_ns(CLOCK_MONOTONIC), PADDING);
            int fd = conns[count_r + (int)(messages % count_s)].fd;
            if (send(fd, line, (size_t)size, MSG_NOSIGNAL) != size)
                fail("the server does not read the senders");
            messages++;
            next_send += interval;
            now = monotonic();
        }
        /* Stalled (a busy machine): skip the missed sends rather than burst
         * them; the achieved rate is reported. */
        if (now - next_send > 0.1)
            next_send = now + interval;
        double wait = next_send - now < 0.05 ? next_send - now : 0.05;
        serve_stamped(epoll, events, wait_ms(wait), &idle);
        now = monotonic();
    }
    window_stop(&measure, now, idle);
    long long measured = messages - measured_from;
    double drain_end = monotonic() + drain_timeout;
    for (;;) {
        long long least = messages;
        for (int r = 0; r < count_r; r++)
            if (got[r] < least)
                least = got[r];
        if (least >= messages || monotonic() >= drain_end)
            break;
        serve_stamped(epoll, events, 50, &idle);
    }
    long long lost = 0;
    for (int r = 0; r < count_r; r++)
        if (got[r] < messages)
            lost += messages - got[r];
    qsort(at_read.values, at_read.count, sizeof *at_read.values, by_value);
    qsort(in_socket.values, in_socket.count, sizeof *in_socket.values, by_value);
    kernel_stamps = kernel_stamps && in_socket.count == at_read.count;
    const struct samples *main_values = kernel_stamps ? &in_socket : &at_read;
    const long long *values = main_values->values;
    size_t count = main_values->count;
    printf("{\"workload\": \"latency\", \"cpus\": %s, \"fd_limit\": %llu, "
           "\"value\": %.4f, \"unit\": \"ms p99\", \"measured_at\": \"%s\", "
           "\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f, "
           "\"read_p50_ms\": %.4f, \"read_p99_ms\": %.4f, \"read_max_ms\": %.4f, "
           "\"samples\": %zu, \"receivers\": %d, \"senders\": %d, "
           "\"target_messages_per_s\": %g, \"messages_per_s\": %.1f, "
           "\"deliveries_per_s\": %.1f, \"lost\": %lld, \"protocol\": \"%s\", ",
           cpus, fd_limit, percentile_ms(values, count, 0.99),
           kernel_stamps ? "kernel receive" : "read", percentile_ms(values, count, 0.50),
           percentile_ms(values, count, 0.99), count ? (double)values[count - 1] / 1e6 : 0.0,
           percentile_ms(at_read.values, at_read.count, 0.50),
           percentile_ms(at_read.values, at_read.count, 0.99),
           at_read.count ? (double)at_read.values[at_read.count - 1] / 1e6 : 0.0, count,
           count_r, count_s, rate, (double)measured / measure.wall,
           (double)measured * count_r / measure.wall, lost, irc ? "irc" : "native");
    window_json(&measure);
    printf(", \"loadgen\": \"c\"}\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "fanout") != 0 && strcmp(argv[1], "latency") != 0)) {
        fprintf(stderr, "usage: fanout_loadgen fanout|latency --port PORT [options]\n");
        return 2;
    }
    workload = argv[1];
    int latency = workload[0] == 'l';
    int port = atoi(option(argc, argv, "--port", "0"));
    int second_port = atoi(option(argc, argv, "--second-port", "0"));
    long server_pid = atol(option(argc, argv, "--server-pid", "0"));
    int cpu = atoi(option(argc, argv, "--cpu", "-1"));
    count_r = atoi(option(argc, argv, "--receivers", "1000"));
    count_s = atoi(option(argc, argv, "--senders", "10"));
    long window = atol(option(argc, argv, "--window", "64"));
    double interval = atof(option(argc, argv, "--receiver-interval", "0.005"));
    double rate = atof(option(argc, argv, "--rate", "200"));
    double duration = atof(option(argc, argv, "--duration", "3"));
    double warmup = atof(option(argc, argv, "--warmup", "0.5"));
    double drain_timeout = atof(option(argc, argv, "--drain-timeout", "10"));
    double timeout = atof(option(argc, argv, "--timeout", "120"));
    concurrency = atoi(option(argc, argv, "--concurrency", "40"));
    if (concurrency < 1)
        fail("--concurrency must be positive");
    const char *protocol = option(argc, argv, "--protocol", "native");
    if (strcmp(protocol, "irc") == 0)
        irc = 1;
    else if (strcmp(protocol, "native") != 0)
        fail("--protocol must be native or irc, not %s", protocol);
    const char *pace = option(argc, argv, "--pace", irc ? "receiver" : "sender");
    if (strcmp(pace, "receiver") == 0)
        paced_by_receiver = 1;
    else if (strcmp(pace, "sender") != 0 || irc)
        fail("--pace must be sender or receiver (receiver over IRC), not %s", pace);
    if (port <= 0 || window < 1 || count_r < 1 || count_s < 1 || rate <= 0)
        fail("--port, --window, --receivers, --senders and --rate must be positive");
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
    credit = calloc((size_t)count_s, sizeof *credit);
    struct epoll_event *events = calloc((size_t)total, sizeof *events);
    if (!conns || !buffer || !expected || !overlong || !sent || !credit || !events)
        fail("out of memory");

    deadline = monotonic() + timeout;
    int receiver_epoll = epoll_create1(0);
    int sender_epoll = epoll_create1(0);
    open_all(receiver_epoll, port, second_port);
    barrier(receiver_epoll);
    if (latency)
        return run_latency(receiver_epoll, server_pid, rate, warmup, duration,
                           drain_timeout, cpus, (unsigned long long)files.rlim_cur);
    /* Paced by receiver 0: it is served as the senders are. */
    for (int i = paced_by_receiver ? 0 : count_r; i < total; i = i == 0 ? count_r : i + 1) {
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
            ssize_t size = receive(i, i < count_r ? "receiver" : "sender");
            if (size < 0)
                continue;
            if (!paced_by_receiver) {
                long own = own_messages(i, size);
                if (own)
                    say(i - count_r, own);
            } else if (i < count_r) {
                take(i, size);
                for (int s = 0; s < count_s; s++)
                    if (credit[s]) {
                        say(s, credit[s]);
                        credit[s] = 0;
                    }
            }
        }
        now = monotonic();
    }
    for (int i = paced_by_receiver ? 0 : count_r; i < total;
         i = i == 0 ? count_r : i + 1) {
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
    printf("], \"drained\": %s, \"protocol\": \"%s\", \"pace\": \"%s\", ",
           behind ? "false" : "true", irc ? "irc" : "native", pace);
    window_json(&measure);
    printf(", \"loadgen\": \"c\"}\n");
    return 0;
}
