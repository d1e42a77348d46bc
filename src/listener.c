/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "fd-util.h"
#include "listener.h"

#define LISTEN_BACKLOG 512

_printf_(2, 3) static int fail(char **ret_error, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        int e = errno;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        *ret_error = s;
        return e > 0 ? -e : -EINVAL;
}

static int listeners_add(Listener **list, size_t *n, int fd, const char *name, const char *unlink_path, bool is_unix) {
        Listener *l = realloc(*list, (*n + 1) * sizeof(Listener));
        if (!l)
                return -ENOMEM;
        *list = l;
        l[*n] = (Listener) {
                .fd = fd,
                .name = strdup(name),
                .unlink_path = unlink_path ? strdup(unlink_path) : NULL,
                .is_unix = is_unix,
        };
        if (!l[*n].name || (unlink_path && !l[*n].unlink_path)) {
                free(l[*n].name);
                free(l[*n].unlink_path);
                return -ENOMEM;
        }
        (*n)++;
        return 0;
}

int listeners_from_activation(Listener **list, size_t *n, char **ret_error) {
        char **names = NULL;
        int count, r = 0;

        count = sd_listen_fds_with_names(true, &names);
        if (count < 0) {
                errno = -count;
                return fail(ret_error, "Cannot read the sockets passed by systemd (LISTEN_FDS): %s", strerror(-count));
        }

        for (int i = 0; i < count; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "unknown";

                if (r < 0)
                        break;
                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
                        errno = EINVAL;
                        r = fail(ret_error,
                                 "The socket passed as fd %d ('%s') is not a listening stream socket: "
                                 "use ListenStream= in the .socket unit, with Accept=no", fd, name);
                        break;
                }
                r = fd_nonblock(fd, true);
                if (r < 0) {
                        errno = -r;
                        r = fail(ret_error, "Cannot make fd %d ('%s') non-blocking: %s", fd, name, strerror(-r));
                        break;
                }
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                r = listeners_add(list, n, fd, name, NULL, sd_is_socket(fd, AF_UNIX, 0, -1) > 0);
        }

        for (int i = 0; names && i < count; i++)
                free(names[i]);
        free(names);
        return r < 0 ? r : count;
}

static int parse_unix_options(char *opts, mode_t *mode, gid_t *gid, char **ret_error) {
        for (char *o = strtok(opts, ","); o; o = strtok(NULL, ",")) {
                if (strncmp(o, "mode=", 5) == 0) {
                        char *end;
                        unsigned long m;

                        errno = 0;
                        m = strtoul(o + 5, &end, 8);
                        if (errno || end == o + 5 || *end || m > 07777) {
                                errno = EINVAL;
                                return fail(ret_error, "'%s': the mode must be octal, e.g. mode=0660", o);
                        }
                        *mode = (mode_t) m;
                } else if (strncmp(o, "group=", 6) == 0) {
                        struct group *g;
                        char *end;
                        unsigned long v;

                        errno = 0;
                        v = strtoul(o + 6, &end, 10);
                        if (o[6] && !*end && !errno)
                                *gid = (gid_t) v;
                        else {
                                errno = 0;
                                g = getgrnam(o + 6);
                                if (!g) {
                                        errno = errno ?: ENOENT;
                                        return fail(ret_error, "'%s': no such group", o);
                                }
                                *gid = g->gr_gid;
                        }
                } else {
                        errno = EINVAL;
                        return fail(ret_error, "'%s': unknown option for a Unix listener (use mode= and group=)", o);
                }
        }
        return 0;
}

static int bind_unix(const char *spec, Listener **list, size_t *n, char **ret_error) {
        _cleanup_free_ char *path = strdup(spec + 5);
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        mode_t mode = 0660;
        gid_t gid = (gid_t) -1;
        struct stat st;
        char *comma;
        int r;

        if (!path)
                return -ENOMEM;
        comma = strchr(path, ',');
        if (comma) {
                *comma = '\0';
                r = parse_unix_options(comma + 1, &mode, &gid, ret_error);
                if (r < 0)
                        return r;
        }
        if (path[0] != '/' || strlen(path) >= sizeof(sa.sun_path)) {
                errno = EINVAL;
                return fail(ret_error, "'%s': a Unix listener needs an absolute path shorter than %zu bytes", spec,
                            sizeof(sa.sun_path));
        }
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return fail(ret_error, "'%s': cannot create a socket: %m", spec);
        /* A socket file left by an earlier run is replaced; a live one, or anything else,
         * is not ours to take. */
        if (lstat(path, &st) >= 0 && S_ISSOCK(st.st_mode)) {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) >= 0) {
                        errno = EADDRINUSE;
                        return fail(ret_error, "'%s': another process listens on this socket", spec);
                }
                (void) unlink(path);
        }
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return fail(ret_error, "'%s': cannot bind: %m", spec);
        if (chmod(path, mode) < 0 || (gid != (gid_t) -1 && chown(path, (uid_t) -1, gid) < 0)) {
                r = fail(ret_error, "'%s': cannot set the socket's mode or group: %m", spec);
                (void) unlink(path);
                return r;
        }
        if (listen(fd, LISTEN_BACKLOG) < 0) {
                r = fail(ret_error, "'%s': cannot listen: %m", spec);
                (void) unlink(path);
                return r;
        }
        {
                /* Logged as the socket, without its options. */
                _cleanup_free_ char *name = NULL;
                if (asprintf(&name, "unix:%s", path) < 0)
                        return -ENOMEM;
                r = listeners_add(list, n, fd, name, path, true);
        }
        if (r < 0)
                return r;
        TAKE_FD(fd);
        return 0;
}

static int bind_tcp(const char *spec, bool disable_ipv6, Listener **list, size_t *n, char **ret_error) {
        _cleanup_free_ char *host = NULL;
        const char *hp = spec + 4, *port;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *ai = NULL;
        int r, bound = 0;

        if (hp[0] == '[') {
                const char *close = strchr(hp, ']');
                if (!close || close[1] != ':') {
                        errno = EINVAL;
                        return fail(ret_error, "'%s': expected tcp:[ADDRESS]:PORT", spec);
                }
                host = strndup(hp + 1, close - hp - 1);
                port = close + 2;
        } else {
                const char *colon = strrchr(hp, ':');
                if (!colon) {
                        errno = EINVAL;
                        return fail(ret_error, "'%s': expected tcp:HOST:PORT", spec);
                }
                host = strndup(hp, colon - hp);
                port = colon + 1;
        }
        if (!host)
                return -ENOMEM;
        hints.ai_family = disable_ipv6 ? AF_INET : AF_UNSPEC;
        r = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
        if (r != 0) {
                errno = EINVAL;
                return fail(ret_error, "'%s': %s", spec, gai_strerror(r));
        }

        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                _cleanup_close_ int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                int one = 1;

                if (fd < 0) {
                        r = fail(ret_error, "'%s': cannot create a socket: %m", spec);
                        break;
                }
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (a->ai_family == AF_INET6)
                        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
                if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
                        r = fail(ret_error, "'%s': cannot listen: %m", spec);
                        break;
                }
                r = listeners_add(list, n, fd, spec, NULL, false);
                if (r < 0)
                        break;
                TAKE_FD(fd);
                bound++;
        }
        freeaddrinfo(ai);
        return r < 0 ? r : bound > 0 ? 0 : -EADDRNOTAVAIL;
}

int listener_bind(const char *spec, bool disable_ipv6, Listener **list, size_t *n, char **ret_error) {
        if (strncmp(spec, "unix:", 5) == 0)
                return bind_unix(spec, list, n, ret_error);
        if (strncmp(spec, "tcp:", 4) == 0)
                return bind_tcp(spec, disable_ipv6, list, n, ret_error);
        errno = EINVAL;
        return fail(ret_error, "'%s': a listener is tcp:HOST:PORT or unix:PATH", spec);
}

void listeners_free(Listener *list, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (list[i].unlink_path)
                        (void) unlink(list[i].unlink_path);
                safe_close(list[i].fd);
                free(list[i].name);
                free(list[i].unlink_path);
        }
        free(list);
}
