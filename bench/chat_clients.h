/*
 * The chat clients of fanout_loadgen.c (both its modes): connections
 * opened a few at a time, registered over the native protocol or IRC
 * (NICK, USER, JOIN #lobby once welcomed, ready at the end of NAMES), half
 * the receivers on a second node when asked, and the room settled (a
 * unique line every member has read) before anything is measured.
 * Receivers are clients 0 .. count_r - 1, senders the next count_s.
 */

#ifndef CHATSERVICE_CHAT_CLIENTS_H
#define CHATSERVICE_CHAT_CLIENTS_H

#include "loadgen.h"

/* Longest incomplete line kept between reads (a delivery is 62 bytes). */
#define CARRY_SIZE 512
/* Connections being set up at once (the server's listen backlog stays short;
 * --concurrency for a server that takes its time to register each one,
 * as InspIRCd, which completes registrations once a second). */
static int concurrency = 40;

static const char REGISTERED[] = "--- you are ";
static const char ERROR_LINE[] = "!!! ";
/* IRC (--protocol irc): what a sender's line starts with, and the replies
 * that mark a connection welcomed (001), in #lobby (366) or refused. */
static int irc;
static const char SAY_IRC[] = "PRIVMSG #lobby :";
#define SAY_IRC_SIZE (sizeof SAY_IRC - 1)
#define IRC_WELCOMED 1
#define IRC_JOINED 366
/* The numerics that refuse a registration or the JOIN (and ERROR: -1). */
static const int IRC_REFUSALS[] = {-1,  405, 432, 433, 436, 437, 451,
                                   464, 465, 471, 473, 474, 475};

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
    int welcomed; /* IRC: 001 seen, JOIN sent */
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

/* The numeric of an IRC line (":server NNN ..."), -1 for ERROR, else 0. */
static int irc_code(const char *line, size_t size)
{
    if (size >= 5 && memcmp(line, "ERROR", 5) == 0)
        return -1;
    if (size == 0 || line[0] != ':')
        return 0;
    const char *space = memchr(line, ' ', size);
    if (space == NULL || (size_t)(line + size - space) < 5 || space[4] != ' ')
        return 0;
    long code;
    return digits(space + 1, 3, &code) ? (int)code : 0;
}

/* IRC set-up: the complete lines ``i`` read (``data``); it joins #lobby once
 * welcomed and is ready at the end of its NAMES; a refusal ends the run.
 * Whether it is ready; the incomplete line is carried. */
static int irc_setup(int i, char *data, size_t length)
{
    struct conn *conn = &conns[i];
    char *end = data + length, *line = data, *newline;
    while ((newline = memchr(line, '\n', (size_t)(end - line))) != NULL) {
        size_t size = (size_t)(newline - line);
        int code = irc_code(line, size);
        for (size_t r = 0; r < sizeof IRC_REFUSALS / sizeof *IRC_REFUSALS; r++)
            if (code == IRC_REFUSALS[r])
                fail("the server refused %s #%d: %.*s",
                     i < count_r ? "receivers" : "senders",
                     i < count_r ? i : i - count_r, (int)(size > 200 ? 200 : size),
                     line);
        if (code == IRC_WELCOMED && !conn->welcomed) {
            /* Some servers (InspIRCd) refuse a JOIN sent before 001. */
            conn->welcomed = 1;
            send_data(conn->fd, "JOIN #lobby\r\n", 13);
        } else if (code == IRC_JOINED && conn->welcomed) {
            conn->carry_size = 0;
            return 1;
        }
        line = newline + 1;
    }
    keep_tail(conn, line, (size_t)(end - line), CARRY_SIZE);
    return 0;
}

/* Open every connection, ``concurrency`` at a time; each sends its nickname and
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
        while (in_setup < concurrency && next < total) {
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
                char hello[128];
                char kind = i < count_r ? 'r' : 's';
                int number = i < count_r ? i : i - count_r;
                int size = irc ? snprintf(hello, sizeof hello,
                                          "NICK %c%05d\r\nUSER %c%05d 0 * :bench\r\n",
                                          kind, number, kind, number)
                               : snprintf(hello, sizeof hello, "%c%05d\r\n", kind,
                                          number);
                send_data(conn->fd, hello, (size_t)size);
                continue;
            }
            ssize_t size = receive(i, what);
            if (size < 0 || conn->ready)
                continue;
            size_t length;
            char *data = joined(i, size, &length);
            char *error;
            if (irc ? irc_setup(i, data, length)
                    : memmem(data, length, REGISTERED, sizeof REGISTERED - 1) != NULL) {
                conn->ready = 1;
                conn->carry_size = 0;
                ready++;
                in_setup--;
            } else if (irc) {
                continue;
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
    int size = snprintf(marker, sizeof marker, "%sSYNC%lld\r\n", irc ? SAY_IRC : "",
                        token);
    send_data(conns[count_r].fd, marker, (size_t)size);
    snprintf(marker, sizeof marker, "%sSYNC%lld\r\n", irc ? " :" : " ", token);
    size_t marker_size = strlen(marker);
    for (int i = 0; i < total; i++) {
        conns[i].ready = 0;
        conns[i].carry_size = 0;
    }
    int left = total;
    if (irc) {
        /* The speaker does not hear itself over IRC. */
        conns[count_r].ready = 1;
        left--;
    }
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

#endif
