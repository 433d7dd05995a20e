/*
 * The WebSocket load generator, in C: the web door's fan-out, latency and
 * memory workloads (bench/run.py web-fanout, web-latency, memory-web), the
 * same for chatservice's web door and for the plain broadcast servers of
 * bench/baselines/ (ws_*.py, ws_node.js), which speak the same JSON.
 *
 * The WebSocket it speaks is RFC 6455's, the least a client must do: an
 * HTTP/1.1 upgrade to /ws with a fixed Sec-WebSocket-Key (the answer's
 * Sec-WebSocket-Accept is checked), masked client text frames, unmasked
 * server frames parsed (text counted, pings answered, a close or a binary
 * frame fails the run).  A text frame holds one JSON event or, for a
 * server that batches, an array of them: events are counted, not frames.
 *
 * The JSON (docs/web.rst), compact (no spaces between tokens) as the door
 * and the baselines send it: {"type":"nick","nick":N} is answered by
 * {"type":"registered",...}; {"type":"say","room":"lobby","text":T} makes
 * {"type":"message",...,"nick":N,"text":T,...} for every member;
 * {"type":"ping"} is answered by {"type":"pong"}.
 *
 * fanout: R receivers (rNNNNN) and S senders (sNNNNN) in #lobby; each sender
 *   keeps a window of numbered messages in flight (one more whenever one of
 *   its own comes back); receivers are read in passes every
 *   --receiver-interval s.  Each delivery is checked by sender and number
 *   as fanout_loadgen.c does (duplicates, out of order, unexpected events,
 *   a final drain); the report has the same keys.
 * latency: S senders send --rate messages/s in all, each stamped with
 *   CLOCK_REALTIME; receivers read at once; the delay until the kernel put
 *   it in the receiver's socket (SO_TIMESTAMPNS) and until it was read.
 * memory: C clients register; all but --room-members go on to rooms of
 *   --room-size (join, part #lobby); each ends with a ping, and once every
 *   pong is back the server's VmRSS is read, before and after.
 *
 * Usage: ws_loadgen fanout|latency|memory --port PORT [--server-pid PID]
 *        [--cpu N] [--receivers 1000] [--senders 10] [--window 8]
 *        [--receiver-interval 0.005] [--rate 200] [--connections 10000]
 *        [--room-members 2000] [--room-size 20] [--duration 3]
 *        [--warmup 0.5] [--drain-timeout 10] [--timeout 120]
 * Loopback (127.0.0.1) only.  What it shares with the other C load
 * generators is in loadgen.h.
 */

#include "loadgen.h"

/* RFC 6455's own example key, and the answer it must get (section 1.3). */
static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char ACCEPT[] = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
static const unsigned char MASK[4] = {0x37, 0xfa, 0x21, 0x3d};
#define CONCURRENCY 40
#define SAMPLES 5
#define SAMPLE_SIZE 200
#define MAX_FRAME (1 << 22)
#define FANOUT_TEXT " fan-out 0123456789abcdef"

enum phase { CONNECTING, UPGRADING, OPEN };

/* One WebSocket: its socket, and what it read that is not a whole frame. */
struct ws {
    int fd;
    enum phase phase;
    int done;           /* the step being waited for has happened */
    char *carry;
    size_t carry_size, carry_room;
};

static struct ws *conns;
static int total, count_r, count_s;
static double deadline;
static char *buffer;
static const char *mode;
static int room_members, room_size;
/* Seconds spent waiting in epoll while measuring (for the busy share). */
static double idle;

/* What the events read mean, by phase of the run. */
enum step { SETUP, SETTLE, MEASURE };
static enum step step;
static char token[64];

static void check_time(const char *what, int left)
{
    if (monotonic() > deadline)
        fail("time limit reached while %s (%d still waiting)", what, left);
}

/* A masked client text frame of ``payload`` appended at ``out``; its size. */
static size_t client_frame(char *out, const char *payload, size_t size)
{
    size_t at = 0;
    out[at++] = (char)0x81;
    if (size < 126) {
        out[at++] = (char)(0x80 | size);
    } else {
        out[at++] = (char)(0x80 | 126);
        out[at++] = (char)(size >> 8);
        out[at++] = (char)(size & 0xff);
    }
    memcpy(out + at, MASK, 4);
    at += 4;
    for (size_t i = 0; i < size; i++)
        out[at + i] = (char)(payload[i] ^ MASK[i & 3]);
    return at + size;
}

static void send_text(int i, const char *text)
{
    char frame[1024];
    size_t size = strlen(text);
    if (size > sizeof frame - 8)
        fail("a message too long for the load generator");
    send_data(conns[i].fd, frame, client_frame(frame, text, size));
}

/* The checks: as fanout_loadgen.c's, by event. */
static long *expected;
static long *sent;
static long long delivered, duplicates, out_of_order, unexpected;
static char samples[SAMPLES][SAMPLE_SIZE];
static size_t sample_sizes[SAMPLES];
static int sample_count;

static void unexpected_event(const char *text, size_t size)
{
    unexpected++;
    if (sample_count < SAMPLES) {
        size_t quoted = size < SAMPLE_SIZE ? size : SAMPLE_SIZE;
        memcpy(samples[sample_count], text, quoted);
        sample_sizes[sample_count++] = quoted;
    }
}

static int number_at(const char *text, const char *end, int count, long long *value)
{
    long long found = 0;
    if (end - text < count)
        return 0;
    for (int d = 0; d < count; d++) {
        if (text[d] < '0' || text[d] > '9')
            return 0;
        found = found * 10 + (text[d] - '0');
    }
    *value = found;
    return 1;
}

/* The value of ``"name":"`` in an event (``event`` .. ``end``), or NULL.
 * Found by its first letter (memchr) and checked whole: several times
 * cheaper than memmem on events this short, and parsing is most of what
 * this process does. */
static const char *field(const char *event, const char *end, const char *name)
{
    size_t size = strlen(name);
    const char *at = event + 1;
    while (end - at >= (long)size - 1) {
        at = memchr(at, name[1], (size_t)(end - at) - (size - 2));
        if (at == NULL)
            return NULL;
        if (memcmp(at - 1, name, size) == 0)
            return at - 1 + size;
        at++;
    }
    return NULL;
}

/* Latency samples (nanoseconds), kept only once measuring. */
static long long *in_socket, *at_read;
static size_t samples_in_socket, samples_at_read, samples_room;
static long long *got_latency;
static long long warm_end_ns, read_ns, kernel_ns;

/* One message event read by ``i`` (``event`` .. ``end``, after its type). */
static void message_event(int i, const char *event, const char *end)
{
    const char *nick = field(event, end, "\"nick\":\"");
    const char *text = nick == NULL ? NULL : field(nick, end, "\"text\":\"");
    long long sender, number;
    if (text == NULL || nick[0] != 's' || !number_at(nick + 1, end, 5, &sender) ||
        sender >= count_s) {
        unexpected_event(event, (size_t)(end - event));
        return;
    }
    if (mode[0] == 'l') {
        if (i < count_r && text[0] == 'L' && number_at(text + 1, end, 19, &number)) {
            got_latency[i]++;
            if (number >= warm_end_ns && samples_at_read < samples_room) {
                at_read[samples_at_read++] = read_ns - number;
                if (kernel_ns)
                    in_socket[samples_in_socket++] = kernel_ns - number;
            }
        } else if (i < count_r) {
            unexpected_event(event, (size_t)(end - event));
        }
        return;
    }
    if (text[0] != 'F' || !number_at(text + 1, end, 8, &number) ||
        (size_t)(end - text) < 9 + sizeof FANOUT_TEXT ||
        memcmp(text + 9, FANOUT_TEXT "\"", sizeof FANOUT_TEXT) != 0) {
        unexpected_event(event, (size_t)(end - event));
        return;
    }
    if (i >= count_r) {
        /* A sender: one more message for each of its own that came back. */
        if (sender == i - count_r)
            expected[(size_t)count_r * (size_t)count_s + (size_t)sender]++;
        return;
    }
    long *want = &expected[(size_t)i * (size_t)count_s + (size_t)sender];
    if (number == *want) {
        *want = (long)number + 1;
        delivered++;
    } else if (number < *want) {
        duplicates++;
    } else {
        out_of_order++;
        *want = (long)number + 1;
        delivered++;
    }
}

/* One text frame read by ``i``: the events in it. */
static void text_frame(int i, const char *text, size_t size)
{
    const char *end = text + size;
    if (step == SETUP) {
        if (field(text, end, "\"type\":\"error\"") != NULL ||
            field(text, end, "\"type\":\"bye\"") != NULL)
            fail("the server refused connection #%d: %.*s", i,
                 (int)(size > 300 ? 300 : size), text);
        const char *wanted = mode[0] == 'm' ? "\"type\":\"pong\"" : "\"type\":\"registered\"";
        if (!conns[i].done && field(text, end, wanted) != NULL)
            conns[i].done = 1;
        return;
    }
    if (step == SETTLE) {
        if (!conns[i].done && memmem(text, size, token, strlen(token)) != NULL)
            conns[i].done = 1;
        return;
    }
    static const char TYPE[] = "\"type\":\"";
    const char *at = text;
    int events = 0;
    /* One object is one event; an array (a batch) is split at each type. */
    int batch = size > 0 && text[0] == '[';
    while ((at = field(at, end, TYPE)) != NULL) {
        events++;
        const char *next = batch ? field(at, end, TYPE) : NULL;
        if (next != NULL)
            next -= sizeof TYPE - 1;
        const char *stop = next == NULL ? end : next;
        if ((size_t)(stop - at) > 8 && memcmp(at, "message\"", 8) == 0)
            message_event(i, at, stop);
        else
            unexpected_event(at - (sizeof TYPE - 1), (size_t)(stop - at) + sizeof TYPE - 1);
        at = stop;
    }
    if (events == 0)
        unexpected_event(text, size);
}

static void keep(struct ws *conn, const char *data, size_t size)
{
    if (size > conn->carry_room) {
        conn->carry_room = size > 4096 ? size * 2 : 4096;
        char *grown = malloc(conn->carry_room);
        if (grown == NULL)
            fail("out of memory");
        memcpy(grown, data, size);
        free(conn->carry);
        conn->carry = grown;
    } else {
        memmove(conn->carry, data, size);
    }
    conn->carry_size = size;
}

/* The frames in ``data``; what is left of an incomplete one is kept. */
static void frames(int i, const char *data, size_t size)
{
    const unsigned char *at = (const unsigned char *)data;
    const unsigned char *end = at + size;
    while (end - at >= 2) {
        size_t header = 2, length = at[1] & 0x7f;
        if (at[1] & 0x80)
            fail("the server masked a frame (connection #%d)", i);
        if (length == 126) {
            if (end - at < 4)
                break;
            length = ((size_t)at[2] << 8) | at[3];
            header = 4;
        } else if (length == 127) {
            if (end - at < 10)
                break;
            length = 0;
            for (int b = 2; b < 10; b++)
                length = (length << 8) | at[b];
            header = 10;
        }
        if (length > MAX_FRAME)
            fail("a frame of %zu bytes (connection #%d)", length, i);
        if ((size_t)(end - at) < header + length)
            break;
        const char *payload = (const char *)at + header;
        int opcode = at[0] & 0x0f;
        if (!(at[0] & 0x80) || opcode == 0)
            fail("a fragmented message (connection #%d): not expected", i);
        if (opcode == 1) {
            text_frame(i, payload, length);
        } else if (opcode == 9) {
            char pong[256];
            size_t n = client_frame(pong, payload, length < 125 ? length : 125);
            pong[0] = (char)0x8a;
            send_data(conns[i].fd, pong, n);
        } else if (opcode == 8) {
            int code = length >= 2 ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1] : 0;
            fail("the server closed connection #%d (code %d: %.*s)", i, code,
                 (int)(length > 2 ? length - 2 : 0), payload + 2);
        } else if (opcode != 10) {
            unexpected_event(payload, length);
        }
        at += header + length;
    }
    keep(&conns[i], (const char *)at, (size_t)(end - at));
}

/* Read what ``i`` has; 0 when nothing was there. */
static int pump(int i)
{
    struct ws *conn = &conns[i];
    ssize_t size;
    if (mode[0] == 'l' && i < count_r && step == MEASURE) {
        char control[CMSG_SPACE(sizeof(struct timespec))];
        struct iovec vector = {.iov_base = buffer, .iov_len = RECV_SIZE};
        struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1,
                                 .msg_control = control, .msg_controllen = sizeof control};
        size = recvmsg(conn->fd, &message, 0);
        read_ns = realtime_ns();
        kernel_ns = kernel_stamp_ns(&message);
    } else {
        size = recv(conn->fd, buffer, RECV_SIZE, 0);
    }
    if (size == 0)
        fail("the server closed connection #%d", i);
    if (size < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        fail("connection #%d: %s", i, strerror(errno));
    }
    const char *data = buffer;
    size_t length = (size_t)size;
    if (conn->carry_size) {
        if (conn->carry_size + length > conn->carry_room) {
            char *grown = realloc(conn->carry, conn->carry_size + length);
            if (grown == NULL)
                fail("out of memory");
            conn->carry = grown;
            conn->carry_room = conn->carry_size + length;
        }
        memcpy(conn->carry + conn->carry_size, buffer, length);
        length += conn->carry_size;
        conn->carry_size = 0;
        data = conn->carry;
    }
    if (conn->phase == UPGRADING) {
        const char *head_end = memmem(data, length, "\r\n\r\n", 4);
        if (head_end == NULL) {
            if (length > 8192)
                fail("no end to the upgrade's answer (connection #%d)", i);
            keep(conn, data, length);
            return 1;
        }
        size_t head = (size_t)(head_end - data) + 4;
        /* Header names are case-insensitive: search a NUL-ended copy. */
        char answer[8200];
        if (head >= sizeof answer)
            fail("an upgrade answer over 8 KiB (connection #%d)", i);
        memcpy(answer, data, head);
        answer[head] = '\0';
        if (length < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0 ||
            strcasestr(answer, ACCEPT) == NULL)
            fail("the server refused the upgrade (connection #%d): %.*s", i,
                 (int)(head > 300 ? 300 : head), data);
        conn->phase = OPEN;
        char hello[96];
        if (mode[0] == 'm') {
            /* memory: clients beyond --room-members go on to a small room. */
            if (i < total - room_members) {
                snprintf(hello, sizeof hello, "{\"type\":\"nick\",\"nick\":\"m%05d\"}", i);
                send_text(i, hello);
                snprintf(hello, sizeof hello, "{\"type\":\"join\",\"room\":\"room%04d\"}",
                         room_size > 0 ? i / room_size : 0);
                send_text(i, hello);
                send_text(i, "{\"type\":\"part\",\"room\":\"lobby\"}");
            } else {
                snprintf(hello, sizeof hello, "{\"type\":\"nick\",\"nick\":\"l%05d\"}", i);
                send_text(i, hello);
            }
            send_text(i, "{\"type\":\"ping\"}");
        } else {
            snprintf(hello, sizeof hello, "{\"type\":\"nick\",\"nick\":\"%c%05d\"}",
                     i < count_r ? 'r' : 's', i < count_r ? i : i - count_r);
            send_text(i, hello);
        }
        data += head;
        length -= head;
    }
    frames(i, data, length);
    return 1;
}

/* Open connections ``first`` .. ``last`` - 1, CONCURRENCY at a time, each
 * upgraded and registered (SETUP's step done). */
static void open_range(int epoll, int port, int first, int last)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    int next = first, busy = 0, ready = 0;
    struct epoll_event events[256];
    step = SETUP;
    while (ready < last - first) {
        check_time("opening WebSocket connections", last - first - ready);
        while (busy < CONCURRENCY && next < last) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0)
                fail("socket: %s", strerror(errno));
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0 &&
                errno != EINPROGRESS)
                fail("connecting to 127.0.0.1:%d: %s", port, strerror(errno));
            conns[next] = (struct ws){.fd = fd, .phase = CONNECTING};
            struct epoll_event event = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)next};
            if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0)
                fail("epoll_ctl: %s", strerror(errno));
            next++;
            busy++;
        }
        int got = epoll_wait(epoll, events, 256, 50);
        if (got < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < got; e++) {
            int i = (int)events[e].data.u32;
            struct ws *conn = &conns[i];
            if (conn->phase == CONNECTING) {
                int error = 0;
                socklen_t size = sizeof error;
                getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &error, &size);
                if (error)
                    fail("connecting to 127.0.0.1:%d: %s", port, strerror(error));
                struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                epoll_ctl(epoll, EPOLL_CTL_MOD, conn->fd, &event);
                char request[256];
                int n = snprintf(request, sizeof request,
                                 "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                 port, KEY);
                conn->phase = UPGRADING;
                send_data(conn->fd, request, (size_t)n);
                continue;
            }
            int was = conn->done;
            pump(i);
            if (conn->done && !was) {
                ready++;
                busy--;
            }
        }
    }
}

/* Read ``first`` .. ``last`` - 1 until each has its step done. */
static void wait_all(int epoll, int first, int last, const char *what)
{
    int left = 0;
    for (int i = first; i < last; i++)
        left += !conns[i].done;
    struct epoll_event events[1024];
    while (left) {
        check_time(what, left);
        int got = epoll_wait(epoll, events, 1024, 50);
        if (got < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < got; e++) {
            int i = (int)events[e].data.u32;
            int was = conns[i].done;
            pump(i);
            if (conns[i].done && !was && i >= first && i < last)
                left--;
        }
    }
}

/* Sender 0 says a unique line; once every member read it, whatever the
 * server queued before (join notices) has been read. */
static void settle(int epoll)
{
    snprintf(token, sizeof token, "SYNC%lld", realtime_ns());
    char say[128];
    snprintf(say, sizeof say, "{\"type\":\"say\",\"room\":\"lobby\",\"text\":\"%s\"}", token);
    for (int i = 0; i < total; i++)
        conns[i].done = 0;
    step = SETTLE;
    send_text(count_r, say);
    wait_all(epoll, 0, total, "waiting for the room to settle");
}

static char *payload;
static size_t payload_room;

/* Sender ``s`` says its next ``count`` numbered messages, in one write. */
static void say(int s, long count)
{
    static const char HEAD[] = "{\"type\":\"say\",\"room\":\"lobby\",\"text\":\"F";
    size_t one = 6 + sizeof HEAD - 1 + 8 + sizeof FANOUT_TEXT - 1 + 2;
    if ((size_t)count * one > payload_room) {
        payload_room = (size_t)count * one * 2;
        payload = realloc(payload, payload_room);
        if (payload == NULL)
            fail("out of memory");
    }
    size_t at = 0;
    char text[128];
    for (long n = sent[s]; n < sent[s] + count; n++) {
        int size = snprintf(text, sizeof text, "%s%08ld%s\"}", HEAD, n, FANOUT_TEXT);
        at += client_frame(payload + at, text, (size_t)size);
    }
    send_data(conns[count_r + s].fd, payload, at);
    sent[s] += count;
}

static int sender_epoll;

static void serve_senders(int wait)
{
    struct epoll_event events[1024];
    double before = monotonic();
    int got = epoll_wait(sender_epoll, events, 1024, wait);
    idle += monotonic() - before;
    if (got < 0 && errno != EINTR)
        fail("epoll_wait: %s", strerror(errno));
    for (int e = 0; e < got; e++) {
        int i = (int)events[e].data.u32;
        long *own = &expected[(size_t)count_r * (size_t)count_s + (size_t)(i - count_r)];
        pump(i);
        if (*own) {
            if (mode[0] == 'f')
                say(i - count_r, *own);
            *own = 0;
        }
    }
}

static void read_receivers(int epoll, int wait)
{
    struct epoll_event events[1024];
    int got;
    do {
        got = epoll_wait(epoll, events, 1024, wait);
        if (got < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int e = 0; e < got; e++)
            pump((int)events[e].data.u32);
        wait = 0;
    } while (got == 1024);
}

static int complete(int r)
{
    for (int s = 0; s < count_s; s++)
        if (expected[(size_t)r * (size_t)count_s + (size_t)s] < sent[s])
            return 0;
    return 1;
}

static long long missing(void)
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

static void print_samples(void)
{
    printf("\"unexpected_events\": %lld, \"unexpected_lines\": %lld, \"unexpected_sample\": [",
           unexpected, unexpected);
    for (int i = 0; i < sample_count; i++) {
        printf("%s\"", i ? ", " : "");
        json_string(stdout, samples[i], sample_sizes[i]);
        printf("\"");
    }
    printf("]");
}

static long rss_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *status = fopen(path, "r");
    if (status == NULL)
        fail("cannot read %s", path);
    long found = -1;
    while (fgets(line, sizeof line, status))
        if (strncmp(line, "VmRSS:", 6) == 0)
            found = atol(line + 6);
    fclose(status);
    if (found < 0)
        fail("no VmRSS in %s", path);
    return found;
}

static int run_memory(int port, long pid, int epoll)
{
    if (!pid)
        fail("memory needs --server-pid");
    struct rlimit files = {0};
    getrlimit(RLIMIT_NOFILE, &files);
    if (files.rlim_cur < (rlim_t)total + 64)
        fail("%d connections need more open files than the limit of %llu allows", total,
             (unsigned long long)files.rlim_cur);
    /* A warm-up client first (the last slot: it stays in #lobby). */
    int clients = total - 1;
    open_range(epoll, port, clients, total);
    struct timespec pause = {0, 200000000};
    nanosleep(&pause, NULL);
    long before = rss_kib(pid);
    open_range(epoll, port, 0, clients);
    wait_all(epoll, 0, clients, "waiting for every pong");
    double settle_until = monotonic() + 0.5;
    while (monotonic() < settle_until)
        read_receivers(epoll, 50);
    long after = rss_kib(pid);
    printf("{\"workload\": \"memory\", \"value\": %.3f, \"unit\": \"KiB/conn\", "
           "\"rss_before_kib\": %ld, \"rss_after_kib\": %ld, \"connections\": %d, "
           "\"room_members\": %d, \"room_size\": %d, \"loadgen_cpu_pct\": null, "
           "\"server_cpu_pct\": null, \"saturated\": false, \"loadgen\": \"c\"}\n",
           (double)(after - before) / clients, before, after, clients,
           room_members, room_size);
    return 0;
}

int main(int argc, char **argv)
{
    workload = "web";
    if (argc < 2 || (strcmp(argv[1], "fanout") && strcmp(argv[1], "latency") &&
                     strcmp(argv[1], "memory"))) {
        fprintf(stderr, "usage: ws_loadgen fanout|latency|memory --port PORT [options]\n");
        return 2;
    }
    mode = argv[1];
    int port = atoi(option(argc, argv, "--port", "0"));
    long server_pid = atol(option(argc, argv, "--server-pid", "0"));
    int cpu = atoi(option(argc, argv, "--cpu", "-1"));
    count_r = atoi(option(argc, argv, "--receivers", "1000"));
    count_s = atoi(option(argc, argv, "--senders", "10"));
    long window = atol(option(argc, argv, "--window", "8"));
    double interval = atof(option(argc, argv, "--receiver-interval", "0.005"));
    double rate = atof(option(argc, argv, "--rate", "200"));
    double duration = atof(option(argc, argv, "--duration", "3"));
    double warmup = atof(option(argc, argv, "--warmup", "0.5"));
    double drain_timeout = atof(option(argc, argv, "--drain-timeout", "10"));
    double timeout = atof(option(argc, argv, "--timeout", "120"));
    room_members = atoi(option(argc, argv, "--room-members", "2000"));
    room_size = atoi(option(argc, argv, "--room-size", "20"));
    if (port <= 0 || window < 1 || count_r < 1 || count_s < 1 || rate <= 0)
        fail("--port, --window, --receivers, --senders and --rate must be positive");
    if (count_s > 99999 || count_r > 99999)
        fail("at most 99999 receivers and senders (five digits)");
    set_up_process(cpu);
    deadline = monotonic() + timeout;
    buffer = malloc(RECV_SIZE);
    int epoll = epoll_create1(0);
    if (mode[0] == 'm') {
        total = atoi(option(argc, argv, "--connections", "10000")) + 1;
        if (total < 2 || total > 99999)
            fail("--connections: 1 to 99998");
        if (room_members > total - 1)
            room_members = total - 1;
        room_members++; /* the warm-up client */
        conns = calloc((size_t)total, sizeof *conns);
        if (!conns || !buffer)
            fail("out of memory");
        return run_memory(port, server_pid, epoll);
    }
    total = count_r + count_s;
    conns = calloc((size_t)total, sizeof *conns);
    /* One row per receiver, and one more: each sender's own messages back. */
    expected = calloc((size_t)(count_r + 1) * (size_t)count_s, sizeof *expected);
    sent = calloc((size_t)count_s, sizeof *sent);
    got_latency = calloc((size_t)count_r, sizeof *got_latency);
    if (!conns || !buffer || !expected || !sent || !got_latency)
        fail("out of memory");
    open_range(epoll, port, 0, total);
    settle(epoll);
    for (int s = 0; s < count_s; s++)
        expected[(size_t)count_r * (size_t)count_s + (size_t)s] = 0;
    sender_epoll = epoll_create1(0);
    for (int i = count_r; i < total; i++) {
        epoll_ctl(epoll, EPOLL_CTL_DEL, conns[i].fd, NULL);
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(sender_epoll, EPOLL_CTL_ADD, conns[i].fd, &event) != 0)
            fail("epoll_ctl: %s", strerror(errno));
    }
    int kernel_stamps = 1;
    if (mode[0] == 'l') {
        for (int i = 0; i < count_r; i++) {
            int one = 1;
            if (setsockopt(conns[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)
                kernel_stamps = 0;
        }
        samples_room = (size_t)(rate * (duration + 1) * count_r) + 1024;
        at_read = malloc(samples_room * sizeof *at_read);
        in_socket = malloc(samples_room * sizeof *in_socket);
        if (!at_read || !in_socket)
            fail("out of memory");
    }
    step = MEASURE;
    struct window measure = {.server_pid = server_pid};
    double now = monotonic();
    double warm_end = now + warmup, end = warm_end + duration;
    warm_end_ns = realtime_ns() + (long long)(warmup * 1e9);
    double next_pass = now, next_send = now;
    long long counted_from = 0, messages = 0, measured_from = 0;
    int measuring = 0;
    if (mode[0] == 'f')
        for (int s = 0; s < count_s; s++)
            say(s, window);
    for (;;) {
        if (!measuring && now >= warm_end) {
            window_start(&measure, now, idle);
            counted_from = delivered;
            measured_from = messages;
            measuring = 1;
        }
        if (now >= end)
            break;
        check_time("measuring", 0);
        double wait;
        if (mode[0] == 'f') {
            if (now >= next_pass) {
                next_pass = now + interval;
                read_receivers(epoll, 0);
                now = monotonic();
            }
            wait = next_pass - now;
        } else {
            while (now >= next_send) {
                char text[128];
                snprintf(text, sizeof text,
                         "{\"type\":\"say\",\"room\":\"lobby\",\"text\":\"L%019lld\"}",
                         realtime_ns());
                send_text(count_r + (int)(messages % count_s), text);
                messages++;
                next_send += 1.0 / rate;
                now = monotonic();
            }
            if (now - next_send > 0.1)
                next_send = now + 1.0 / rate; /* stalled: skip, do not burst */
            wait = next_send - now;
            read_receivers(epoll, 0);
        }
        if (wait > 0.05)
            wait = 0.05;
        if (mode[0] == 'l') {
            /* Receivers at once; senders only drained. */
            struct epoll_event events[1024];
            int got = epoll_wait(epoll, events, 1024, (int)(wait * 1000));
            idle += monotonic() - now;
            for (int e = 0; e < got; e++)
                pump((int)events[e].data.u32);
            serve_senders(0);
        } else {
            serve_senders(wait > 0 ? (int)(wait * 1000 + 0.999) : 0);
        }
        now = monotonic();
    }
    window_stop(&measure, now, idle);
    for (int i = count_r; i < total; i++) {
        epoll_ctl(sender_epoll, EPOLL_CTL_DEL, conns[i].fd, NULL);
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epoll, EPOLL_CTL_ADD, conns[i].fd, &event);
    }
    double drain_end = monotonic() + drain_timeout;
    long long lost = 0;
    if (mode[0] == 'f') {
        int behind = 0;
        for (int r = 0; r < count_r; r++)
            behind += !complete(r);
        while (behind && monotonic() < drain_end) {
            read_receivers(epoll, 50);
            behind = 0;
            for (int r = 0; r < count_r; r++)
                behind += !complete(r);
        }
        long long deliveries = delivered - counted_from, total_sent = 0;
        for (int s = 0; s < count_s; s++)
            total_sent += sent[s];
        lost = missing();
        printf("{\"workload\": \"web-fanout\", \"value\": %.1f, \"unit\": \"deliveries/s\", "
               "\"deliveries\": %lld, \"messages_sent\": %lld, \"receivers\": %d, "
               "\"senders\": %d, \"window\": %ld, \"receiver_interval\": %g, "
               "\"lost\": %lld, \"duplicates\": %lld, \"out_of_order\": %lld, ",
               (double)deliveries / measure.wall, deliveries, total_sent, count_r, count_s,
               window, interval, lost, duplicates, out_of_order);
        print_samples();
        printf(", \"drained\": %s, ", behind ? "false" : "true");
    } else {
        long long least;
        do {
            read_receivers(epoll, 50);
            least = messages;
            for (int r = 0; r < count_r; r++)
                if (got_latency[r] < least)
                    least = got_latency[r];
        } while (least < messages && monotonic() < drain_end);
        for (int r = 0; r < count_r; r++)
            lost += messages - got_latency[r];
        qsort(at_read, samples_at_read, sizeof *at_read, by_value);
        qsort(in_socket, samples_in_socket, sizeof *in_socket, by_value);
        kernel_stamps = kernel_stamps && samples_in_socket == samples_at_read;
        long long *main_values = kernel_stamps ? in_socket : at_read;
        size_t count = samples_at_read;
        long long measured = messages - measured_from;
        printf("{\"workload\": \"web-latency\", \"value\": %.4f, \"unit\": \"ms p99\", "
               "\"measured_at\": \"%s\", \"p50_ms\": %.4f, \"p99_ms\": %.4f, "
               "\"max_ms\": %.4f, \"read_p50_ms\": %.4f, \"read_p99_ms\": %.4f, "
               "\"read_max_ms\": %.4f, \"samples\": %zu, \"receivers\": %d, "
               "\"senders\": %d, \"target_messages_per_s\": %g, "
               "\"messages_per_s\": %.1f, \"deliveries_per_s\": %.1f, \"lost\": %lld, "
               "\"duplicates\": 0, \"out_of_order\": 0, ",
               percentile_ms(main_values, count, 0.99),
               kernel_stamps ? "kernel receive" : "read",
               percentile_ms(main_values, count, 0.50), percentile_ms(main_values, count, 0.99),
               count ? (double)main_values[count - 1] / 1e6 : 0.0,
               percentile_ms(at_read, count, 0.50), percentile_ms(at_read, count, 0.99),
               count ? (double)at_read[count - 1] / 1e6 : 0.0, count, count_r, count_s, rate,
               (double)measured / measure.wall,
               (double)measured * count_r / measure.wall, lost);
        print_samples();
        printf(", ");
    }
    window_json(&measure);
    printf(", \"loadgen\": \"c\"}\n");
    return 0;
}
